import type { Secret } from './secret.js';

/** A command as argv. Never a formatted shell string: see renderArgv for the one place that quotes. */
export interface Cmd {
  readonly argv: readonly [string, ...string[]];
  readonly env?: Readonly<Record<string, string>>;
  readonly stdin?: string | Secret;
}

/** The outcome of one command, whatever its exit code. CommandError carries the same shape. */
export interface RunResult {
  readonly command: string;
  readonly target: string;
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  readonly ok: boolean;
}

export interface RunOptions {
  readonly timeoutMs?: number;
}

/** Where commands run: this machine or a host over SSH. run() resolves for any exit code. */
export interface Transport {
  /** A short name for messages: "local" or "user@host:port". */
  readonly target: string;
  /** Commands sent so far: one per round trip to the host. */
  readonly roundTrips: number;
  run(cmd: Cmd, options?: RunOptions): Promise<RunResult>;
  close(): Promise<void>;
}
