/**
 * Deadlines that hold on the host, not only on the controller. Closing an SSH channel does not stop
 * the command behind it (a process that never writes never gets SIGPIPE), so a bounded command runs
 * under coreutils `timeout`, which puts itself in its own process group and signals the whole group:
 * TERM at the deadline, KILL `killAfterSeconds` later. It also bounds a command whose connection
 * dropped: nobody is left to close anything then.
 */
export const killAfterSeconds = 5;

/** Whole seconds, at least 1, for a deadline in milliseconds. */
export const deadlineSeconds = (timeoutMs: number): number => Math.max(1, Math.ceil(timeoutMs / 1000));

const deadlineScript = 'k=$1 t=$2; shift 2; if command -v timeout >/dev/null 2>&1; then exec timeout -k "$k" "$t" "$@"; fi; exec "$@"';

/**
 * argv run under `timeout` on the host: exit 124 (TERM) or 137 (KILL) when the deadline passed. A host
 * without `timeout` (zanuri check asks only for a POSIX sh) runs the command as it is, bounded by the
 * controller alone.
 */
export function underDeadline(argv: readonly [string, ...string[]], timeoutMs: number): [string, ...string[]] {
  return ['sh', '-c', deadlineScript, 'zanuri-deadline', String(killAfterSeconds), String(deadlineSeconds(timeoutMs)), ...argv];
}

/** How long the controller waits for a command under `timeout` before it gives up on the channel too. */
export const controllerWaitMs = (timeoutMs: number): number => deadlineSeconds(timeoutMs) * 1000 + (killAfterSeconds + 5) * 1000;

/**
 * Did a command under `timeout` end because of its deadline? 124 after TERM; after KILL, 137 or no code
 * at all (timeout sends KILL to its own process group, itself included). Those alone could be the
 * command's own, so the time it took decides.
 */
export const hitDeadline = (exitCode: number | null, durationMs: number, timeoutMs: number): boolean =>
  (exitCode === 124 || exitCode === 137 || exitCode === null) && durationMs >= deadlineSeconds(timeoutMs) * 1000 - 250;
