import { AuthError, CommandError, UnreachableError } from '../core/errors.js';
import type { HostContext } from './types.js';

/**
 * How long a proof waits before trying once more after sshd's port refused it. ufw limit (the ufw
 * step's default for a public SSH port) refuses a 6th new connection from one address within 30 s,
 * and every refused attempt counts too: only a pause longer than the window gets through again.
 */
export const rateLimitWindowMs = 31_000;

/** Delays between the attempts of a proof right after sshd reloads or restarts: about 7 s in all. */
export const reloadRetryDelaysMs = [500, 1000, 2000, 3500];

/** Runs `proof` until it passes, or until `delayAfter` (given the failed attempt's number and error) says to stop with undefined. */
async function retrying(proof: () => Promise<void>, delayAfter: (attempt: number, error: unknown) => number | undefined): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await proof();
    } catch (error) {
      const delay = delayAfter(attempt, error);
      if (delay === undefined) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** True when the host's port actively refused the connection (sshd re-executing, or ufw limit), not a timeout or a bad credential. */
export function isRefused(error: unknown): boolean {
  if (!(error instanceof UnreachableError)) return false;
  const cause = error.cause as { code?: string } | undefined;
  return cause?.code === 'ECONNREFUSED' || cause?.code === 'ECONNRESET' || /ECONNREFUSED|ECONNRESET/.test(error.message);
}

async function loginOnce(ctx: HostContext, options: { user?: string | null; sudo?: boolean }): Promise<void> {
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
 * The proof that the operator still gets in, over a brand-new connection: as the login user, or
 * as `user` with the operator's key; with `sudo`, that user also becomes root without a password.
 * Steps that touch access (sshd, the firewall, the deploy user) call it before and after they change
 * anything; a throw after the change rolls the step back. A refused connection is tried once more
 * after the rate-limit window (`delaysMs` replaces that schedule); a timeout or a refused login is final.
 */
export async function proveLogin(
  ctx: HostContext,
  options: { user?: string | null; sudo?: boolean; delaysMs?: readonly number[] } = {},
): Promise<void> {
  if (ctx.local) return;
  const delays = options.delaysMs ?? [rateLimitWindowMs];
  await retrying(() => loginOnce(ctx, options), (attempt, error) => (isRefused(error) ? delays[attempt] : undefined));
}

/**
 * The proof a firewall needs: a brand-new connection gets through to sshd. sshd refusing the login
 * user still proves it (ssh-harden may have just turned root logins off); a timeout or a refused
 * or reset connection does not, once the rate-limit window has been waited out.
 */
export async function proveReachable(ctx: HostContext): Promise<void> {
  try {
    await proveLogin(ctx);
  } catch (error) {
    if (error instanceof AuthError) return;
    throw error;
  }
}

/**
 * Runs a proof again while the host cannot be reached (sshd re-executes itself on SIGHUP; a
 * socket-activated one restarts), a bounded number of times; when the last of those was refused,
 * once more after the rate-limit window (the quick attempts count against ufw limit too).
 * An authentication failure is final: retrying it proves nothing and feeds fail2ban.
 */
export async function retryWhileUnreachable(proof: () => Promise<void>, delaysMs: readonly number[] = reloadRetryDelaysMs): Promise<void> {
  await retrying(proof, (attempt, error) => {
    if (!(error instanceof UnreachableError)) return undefined;
    return delaysMs[attempt] ?? (attempt === delaysMs.length && isRefused(error) ? rateLimitWindowMs : undefined);
  });
}
