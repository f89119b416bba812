import { CommandError } from '../core/errors.js';
import type { HostContext } from './types.js';

/**
 * The proof that the operator still gets in, over a brand-new connection: as the login user, or
 * as `user` with the operator's key; with `sudo`, that user also becomes root without a password.
 * Steps that touch access (sshd, the firewall, the deploy user) call it before and after they change
 * anything; a throw after the change rolls the step back.
 */
export async function proveLogin(ctx: HostContext, options: { user?: string | null; sudo?: boolean } = {}): Promise<void> {
  if (ctx.local) return;
  const who = options.user ?? ctx.loginUser;
  const transport = options.user ? await ctx.connectAs(options.user) : await ctx.connectFresh();
  try {
    const result = await transport.run(options.sudo ? { argv: ['sudo', '-n', 'true'] } : { argv: ['true'] });
    if (!result.ok) throw new CommandError(result, options.sudo ? `sudo -n as ${who} over a fresh SSH login` : `a fresh SSH login as ${who}`);
  } finally {
    await transport.close();
  }
}
