import { ExitCode, ZanuriError } from '../core/errors.js';
import type { Cmd, RunResult, Transport } from '../core/types.js';

/**
 * An established connection went away under a command: the host stopped answering keepalives
 * (`unresponsive`), closed or reset the connection (`closed`: a reboot, sshd restarted, a cut link),
 * or zanuri closed it itself (`aborted`: a per-host deadline passed). Exit 4, like a host never reached.
 */
export class ConnectionLostError extends ZanuriError {
  readonly code = 'CONNECTION_LOST';
  readonly exitCode = ExitCode.unreachable;

  constructor(readonly target: string, readonly reason: 'unresponsive' | 'closed' | 'aborted', message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A command that lives as long as the connection: its stdin stays open until `release()` or until
 * the connection ends, so a host-side process that reads it to its end (a lock holder) is gone as
 * soon as the controller is, even when the controller crashed.
 */
export interface HeldCommand {
  /** Its output up to and including the first line that starts with `until`, or everything when it exited first (then `exitCode` is set). */
  readonly started: Promise<RunResult>;
  /** Ends its stdin; the command sees EOF. */
  release(): void;
}

export interface HoldOptions {
  /** `started` resolves once a stdout line starts with this. */
  until: string;
  /** Each stdout line as it arrives (e.g. "waiting for the lock held by ..."). */
  onLine?: (line: string) => void;
  /** Bound on `started`: past it the channel is closed and `started` resolves with exitCode null. */
  timeoutMs: number;
}

/** Transports that can hold a command open for the length of a session (SSH; not this machine). */
export interface Holding {
  hold(cmd: Cmd, options: HoldOptions): HeldCommand;
}

export const canHold = (t: Transport): t is Transport & Holding => typeof (t as Partial<Holding>).hold === 'function';
