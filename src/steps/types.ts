import type { Plan, Action } from '../core/plan.js';
import type { Cmd, RunResult, Transport } from '../core/types.js';
import type { FactRequest, FactValues } from '../facts/state.js';

/** What a step may know about the host before any fact is read. */
export interface HostInfo {
  /** The user zanuri logged in as (root, or a sudoer whose commands run through sudo -n). */
  loginUser: string;
  /** The SSH port of this connection; null for --local runs (read sshd's own config instead). */
  sshPort: number | null;
  local: boolean;
}

/** What verify() and beforeApply() may do: talk to the host, always over new connections for proof. */
export interface HostContext extends HostInfo {
  target: string;
  /** Runs as root over the current connection (sudo -n is added for a non-root login). */
  run(cmd: Cmd): Promise<RunResult>;
  /** A brand-new connection as the login user: proves the host still lets us in. */
  connectFresh(): Promise<Transport>;
  /** A brand-new connection as another user with the operator's key. */
  connectAs(user: string): Promise<Transport>;
}

/**
 * One provisioning step. Steps return data; only the engine acts. parseParams runs before any
 * connection; plan() is pure (no I/O, no clock), so plans can be tested from captured facts.
 */
export interface Step<P> {
  readonly id: string;
  readonly title: string;
  /** Steps that must run earlier when both are selected. */
  readonly after?: readonly string[];
  /** Validates raw playbook/--set parameters; throws ConfigError naming the bad value. */
  parseParams(raw: unknown): P;
  /** Debian packages the step needs; the engine installs the missing ones of all steps in one apt run. */
  packages?(params: P): string[];
  /** Every fact plan() reads. */
  facts(params: P, host: HostInfo): FactRequest<unknown>[];
  plan(facts: FactValues, params: P, host: HostInfo): Plan;
  /** Runs before the step's actions are applied; throwing stops the step with nothing changed. */
  beforeApply?(ctx: HostContext, params: P): Promise<void>;
  /** Runs after apply and handlers; throwing rolls the step back. */
  verify?(ctx: HostContext, params: P): Promise<void>;
  /**
   * Extra undo actions on top of the engine's own (which restores every file the step replaced or
   * removed and runs their handlers). E.g. `ufw disable` when the firewall cut us off.
   */
  rollback?(applied: readonly Action[], params: P): Action[];
}

/** A step whose parameter type is hidden, for registries and the engine. */
export type AnyStep = Step<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
