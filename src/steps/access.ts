import { AuthError, CommandError, UnreachableError } from '../core/errors.js';
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

/**
 * The proof a firewall needs: a brand-new connection gets through to sshd. sshd refusing the login
 * user still proves it (ssh-harden may have just turned root logins off); a timeout or a refused
 * or reset connection does not.
 */
export async function proveReachable(ctx: HostContext): Promise<void> {
  try {
    await proveLogin(ctx);
  } catch (error) {
    if (error instanceof AuthError) return;
    throw error;
  }
}

/** Delays between the attempts of a proof right after sshd reloads or restarts: about 7 s in all. */
export const reloadRetryDelaysMs = [500, 1000, 2000, 3500];

/**
 * Runs a proof again while the host cannot be reached (sshd re-executes itself on SIGHUP; a
 * socket-activated one restarts), a bounded number of times. An authentication failure is final:
 * retrying it proves nothing and feeds fail2ban.
 */
export async function retryWhileUnreachable(proof: () => Promise<void>, delaysMs: readonly number[] = reloadRetryDelaysMs): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await proof();
    } catch (error) {
      const delay = delaysMs[attempt];
      if (!(error instanceof UnreachableError) || delay === undefined) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
