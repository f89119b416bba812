import type { Action } from '../core/plan.js';
import type { FactRequest, FactValues } from '../facts/state.js';

/**
 * One piece of declared state: a file, a package set, a service. A resource owns, once, what steps
 * used to repeat by hand: the facts it reads, the comparison, the human reason for a change, and
 * the actions (whose undo the engine knows per action kind).
 */
export interface Resource {
  /** Unique within a run, e.g. "file:/etc/ssh/sshd_config.d/00-zanuri.conf". */
  readonly id: string;
  /** What the host looks like when this resource is converged; the step's no-op line is built from these. */
  readonly describe: string;
  /**
   * After this resource changes something (packages, a repository, a reboot), the facts of the
   * resources after it are read again before they are planned; a dry run marks them provisional.
   */
  readonly checkpoint?: boolean;
  facts(): FactRequest<unknown>[];
  /** The actions that bring the host to the declared state; none when it is there. Pure. */
  plan(facts: FactValues): Action[];
}

/** Adds `extra` to the reason of the first action: used to say something once per plan, not per line. */
export function withReason(actions: Action[], extra: string): Action[] {
  const [first, ...rest] = actions;
  return first ? [{ ...first, why: `${first.why}${extra}` }, ...rest] : [];
}
