import { execa } from 'execa';
import { deadlineSeconds, killAfterSeconds } from '../core/deadline.js';
import { renderArgv } from '../core/quote.js';
import type { Cmd, RunOptions, RunResult, Transport } from '../core/types.js';
import { Secret } from '../core/secret.js';
import { UsageError } from '../core/errors.js';

/** Signals a whole process group; a group already gone is no error. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: everything in it has exited already.
  }
}

/** Runs commands on this machine as argv, without a shell. */
export class LocalTransport implements Transport {
  readonly target = 'local';
  readonly sshPort = null;
  readonly forwardLocal = null;
  #roundTrips = 0;

  get roundTrips(): number {
    return this.#roundTrips;
  }

  /**
   * With a timeout the command starts in its own process group (detached), and the deadline kills
   * the group: TERM, then KILL a few seconds later. Killing only the direct child, as a plain
   * timeout does, would leave its children (sh -c '...; sleep') running.
   */
  async run(cmd: Cmd, options?: RunOptions): Promise<RunResult> {
    this.#roundTrips += 1;
    const [file, ...args] = cmd.argv;
    const timeoutMs = options?.timeoutMs;
    const started = performance.now();
    const child = execa(file, args, {
      reject: false,
      stripFinalNewline: false,
      env: cmd.env ? { ...cmd.env } : undefined,
      input: cmd.stdin instanceof Secret ? cmd.stdin.reveal() : cmd.stdin,
      stdin: cmd.stdin === undefined ? 'ignore' : undefined,
      ...(timeoutMs ? { detached: true } : {}),
    });
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    if (timeoutMs && child.pid !== undefined) {
      const pid = child.pid;
      timers.push(setTimeout(() => {
        timedOut = true;
        signalGroup(pid, 'SIGTERM');
        timers.push(setTimeout(() => signalGroup(pid, 'SIGKILL'), killAfterSeconds * 1000));
      }, deadlineSeconds(timeoutMs) * 1000));
    }
    const result = await child;
    for (const t of timers) clearTimeout(t);
    // The group may outlive its leader (a child that ignored TERM): it goes too.
    if (timedOut && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
    const exitCode = timedOut ? null : result.exitCode ?? null;
    const stderr = String(result.stderr ?? '');
    const why = timedOut ? `timed out after ${deadlineSeconds(timeoutMs ?? 0)} s: the command and its process group were killed` : result.message ?? '';
    return {
      command: renderArgv(cmd.argv),
      target: this.target,
      exitCode,
      stdout: String(result.stdout ?? ''),
      // A command that never started (not found, timed out) has no stderr of its own: say why.
      stderr: timedOut ? `${stderr}${stderr && !stderr.endsWith('\n') ? '\n' : ''}${why}` : exitCode === null && !stderr ? why : stderr,
      durationMs: Math.round(performance.now() - started),
      ok: exitCode === 0,
    };
  }

  /** Logging in as another user is what a --local run cannot test: there is no login here. */
  async connectAs(): Promise<Transport> {
    throw new UsageError('a login as another user cannot be tested in a --local run');
  }

  async close(): Promise<void> {}
}
