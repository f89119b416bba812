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

/** A local port whose connections reach an address as the remote host sees it (ssh -L). */
export interface PortForward {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Where commands run: this machine or a host over SSH. run() resolves for any exit code.
 * What differs between the two is said by capabilities, never found out from the class or the host string.
 */
export interface Transport {
  /** A short name for messages: "local" or "user@host:port". */
  readonly target: string;
  /** Commands sent so far: one per round trip to the host. */
  readonly roundTrips: number;
  /** The SSH port this connection reached; null on this machine. */
  readonly sshPort: number | null;
  /**
   * Opens a port on 127.0.0.1 carried through the connection to host:port as the remote machine sees
   * it, so internal endpoints stay internal. Null on this machine, where such addresses are reachable as they are.
   */
  readonly forwardLocal: ((host: string, port: number) => Promise<PortForward>) | null;
  /** A new connection to the same host, with the same options, as another user; rejects on this machine. */
  connectAs(user: string): Promise<Transport>;
  run(cmd: Cmd, options?: RunOptions): Promise<RunResult>;
  close(): Promise<void>;
}
