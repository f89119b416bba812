import type { RunResult } from './types.js';

/**
 * Process exit codes, documented in README.md. Exit codes are data at the bottom (RunResult) and
 * typed errors at the top: every ZanuriError names the exit code its kind of failure earns.
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  requirementFailed: 3,
  unreachable: 4,
  hostKey: 5,
  /** A provisioning step failed or was rolled back. */
  provisionFailed: 6,
  /** A benchmark ran but some of its requests failed: the report is partial. */
  benchIncomplete: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export abstract class ZanuriError extends Error {
  /** Stable identifier, printed in --json output. */
  abstract readonly code: string;
  abstract readonly exitCode: ExitCode;
  /** What the user can do about it, when we know. */
  readonly hint: string | undefined;

  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** Bad flags or arguments. */
export class UsageError extends ZanuriError {
  readonly code = 'USAGE';
  readonly exitCode = ExitCode.usage;
}

/** A configuration file (profile, inventory) that cannot be used; `location` is file:line:col. */
export class ConfigError extends ZanuriError {
  readonly code = 'CONFIG';
  readonly exitCode = ExitCode.usage;
  readonly location: string | undefined;

  constructor(message: string, options?: { location?: string; hint?: string; cause?: unknown }) {
    super(options?.location ? `${options.location}: ${message}` : message, options);
    this.location = options?.location;
  }
}

/**
 * A step parameter that fails its schema. `path` is where in the step's parameters (["allow", 0,
 * "port"]), so a caller holding the playbook's YAML can point at file:line:col.
 */
export class ParamsError extends ConfigError {
  readonly step: string;
  readonly path: readonly (string | number)[];

  constructor(step: string, path: readonly (string | number)[], message: string, options?: { location?: string; hint?: string }) {
    super(message, options);
    this.step = step;
    this.path = path;
  }
}

/** The host could not be reached: DNS, refused, timed out, bastion down. */
export class UnreachableError extends ZanuriError {
  readonly code = 'UNREACHABLE';
  readonly exitCode = ExitCode.unreachable;
}

/** The host answered but refused every credential we had. */
export class AuthError extends ZanuriError {
  readonly code = 'AUTH';
  readonly exitCode = ExitCode.unreachable;
}

/** The host presented a key that differs from the one in known_hosts: possibly an attack. */
export class HostKeyChangedError extends ZanuriError {
  readonly code = 'HOST_KEY_CHANGED';
  readonly exitCode = ExitCode.hostKey;
}

/** The host's key is not in known_hosts and the user did not allow recording new keys. */
export class HostKeyUnknownError extends ZanuriError {
  readonly code = 'HOST_KEY_UNKNOWN';
  readonly exitCode = ExitCode.hostKey;
}

/** A command that had to succeed did not. Carries the whole result for debugging. */
export class CommandError extends ZanuriError {
  readonly code = 'COMMAND_FAILED';
  readonly exitCode = ExitCode.internal;
  readonly command: string;
  readonly target: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  readonly ok = false;
  /** The command's own exit code (null when killed); `exitCode` is the process exit code zanuri uses. */
  readonly commandExitCode: number | null;

  constructor(result: RunResult, what: string) {
    const detail = result.stderr.trim().split('\n').slice(-3).join(' | ');
    super(`${what} failed on ${result.target} (exit ${result.exitCode ?? 'killed'}): ${result.command}${detail ? ` — ${detail}` : ''}`);
    this.command = result.command;
    this.target = result.target;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
    this.durationMs = result.durationMs;
    this.commandExitCode = result.exitCode;
  }
}

/**
 * A provisioning step's own work failed on the host (apt could not install, a lock stayed held past
 * its bound, a mirror did not answer): the step failed, exit 6, with the host's own words as the reason.
 */
export class StepFailedError extends ZanuriError {
  readonly code = 'STEP_FAILED';
  readonly exitCode = ExitCode.provisionFailed;
  readonly target: string;

  constructor(target: string, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options);
    this.target = target;
  }
}

export interface ErrorView {
  code: string;
  message: string;
  hint?: string;
  exitCode: ExitCode;
}

/** An error as reports and --json show it: a stable code, the message, the hint and the exit code it earns. */
export function errorView(error: unknown): ErrorView {
  if (error instanceof ZanuriError) return { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}), exitCode: error.exitCode };
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error), exitCode: ExitCode.internal };
}
