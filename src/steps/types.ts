import type { Templates } from '../core/content.js';
import type { Action } from '../core/plan.js';
import type { RunResult, Cmd, Transport } from '../core/types.js';
import type { FactRequest, FactValues } from '../facts/state.js';
import type { Resource } from '../resources/types.js';
import { parseWith, type Static, type TSchema } from './schema.js';

/** What a step may know about the host before any fact is read. */
export interface HostInfo {
  /** The user zanuri logged in as (root, or a sudoer whose commands run through sudo -n). */
  loginUser: string;
  /** The SSH port of this connection; null for --local runs (read sshd's own config instead). */
  sshPort: number | null;
  local: boolean;
}

/** A port a step's service listens on, and who may reach it: the firewall opens what the steps declare. */
export interface ServedPort {
  port: number;
  protocol: 'tcp' | 'udp';
  /** public: everyone; internal: the internal networks only; admin: the operators' sources only. */
  access: 'public' | 'internal' | 'admin';
  /** The step that serves it, and why, for the firewall's reasons. */
  step: string;
  why: string;
}

/** What resources() may use besides facts and parameters: the host as known before facts, and the templates. */
export interface PlanContext extends HostInfo {
  templates: Templates;
  /** Every port the selected steps serve (their `serves()`), so the firewall never shuts a site out. */
  served: readonly ServedPort[];
  /** The ids of the steps selected in this run, so a step can declare its part of a file another step adds to (docker's daemon.json). */
  selected?: readonly string[];
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
 * One provisioning step, written as a declaration: resources() lists what the host should look
 * like, as a pure function of facts and parameters; the resources compare and plan; only the
 * engine acts. Parameters are checked before any connection, against `params` and then check().
 */
export interface StepDefinition<S extends TSchema, P> {
  readonly id: string;
  readonly title: string;
  /** Steps that must run earlier when both are selected. */
  readonly after?: readonly string[];
  /** The parameters' schema: type, validation, playbook JSON Schema and README table in one. */
  readonly params: S;
  /** Rules across parameters and normalisation, after the schema; throws ConfigError. */
  check?(raw: Static<S>): P;
  /** Debian packages the step needs; the engine installs the missing ones of all steps in one apt run. */
  packages?(params: P): string[];
  /** The ports this step's service listens on; the firewall step opens them (see PlanContext.served). */
  serves?(params: P): Omit<ServedPort, 'step'>[];
  /** Facts resources() itself reads to decide what to declare (each resource reads its own). */
  facts?(params: P, host: HostInfo): FactRequest<unknown>[];
  resources(facts: FactValues, params: P, ctx: PlanContext): Resource[];
  /** The one line that says why a converged host needs nothing from this step. */
  converged(params: P, facts: FactValues, ctx: PlanContext): string;
  /** Runs before the step's actions are applied; throwing stops the step with nothing changed. */
  beforeApply?(ctx: HostContext, params: P): Promise<void>;
  /** Runs after apply and handlers; throwing rolls the step back. */
  verify?(ctx: HostContext, params: P): Promise<void>;
  /**
   * Extra undo actions on top of the engine's own (which undoes every applied action it knows how
   * to and runs the handlers). E.g. `ufw disable` when the firewall cut us off.
   */
  rollback?(applied: readonly Action[], params: P): Action[];
}

export interface Step<P> extends Omit<StepDefinition<TSchema, P>, 'check'> {
  /** Schema, then check(): the parameters as the step uses them, or a ParamsError/ConfigError. */
  parseParams(raw: unknown): P;
}

/** A step from its definition: the one place parameters are parsed. */
export function defineStep<S extends TSchema, P = Static<S>>(definition: StepDefinition<S, P>): Step<P> {
  return {
    ...definition,
    parseParams(raw: unknown): P {
      const valid = parseWith(definition.params, raw, definition.id);
      return definition.check ? definition.check(valid) : (valid as unknown as P);
    },
  };
}

/** A step whose parameter type is hidden, for registries and the engine. */
export type AnyStep = Step<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
