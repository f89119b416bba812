import { execa } from 'execa';
import { renderArgv } from '../core/quote.js';
import type { Cmd, RunOptions, RunResult, Transport } from '../core/types.js';
import { Secret } from '../core/secret.js';
import { UsageError } from '../core/errors.js';

/** Runs commands on this machine as argv, without a shell. */
export class LocalTransport implements Transport {
  readonly target = 'local';
  readonly sshPort = null;
  readonly forwardLocal = null;
  #roundTrips = 0;

  get roundTrips(): number {
    return this.#roundTrips;
  }

  async run(cmd: Cmd, options?: RunOptions): Promise<RunResult> {
    this.#roundTrips += 1;
    const [file, ...args] = cmd.argv;
    const started = performance.now();
    const result = await execa(file, args, {
      reject: false,
      stripFinalNewline: false,
      env: cmd.env ? { ...cmd.env } : undefined,
      input: cmd.stdin instanceof Secret ? cmd.stdin.reveal() : cmd.stdin,
      stdin: cmd.stdin === undefined ? 'ignore' : undefined,
      timeout: options?.timeoutMs,
    });
    const exitCode = result.exitCode ?? null;
    const stderr = String(result.stderr ?? '');
    return {
      command: renderArgv(cmd.argv),
      target: this.target,
      exitCode,
      stdout: String(result.stdout ?? ''),
      // A command that never started (not found, timed out) has no stderr of its own: say why.
      stderr: exitCode === null && !stderr ? result.message ?? "" : stderr,
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
