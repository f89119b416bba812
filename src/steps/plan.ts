import { plan, type Action, type Plan } from '../core/plan.js';
import type { FactRequest, FactValues } from '../facts/state.js';
import type { Resource } from '../resources/types.js';
import type { AnyStep, HostInfo, PlanContext, ServedPort } from './types.js';

/** Every fact a step reads: its own, and its resources' (as declared from these facts). */
export function stepFacts(step: AnyStep, params: unknown, host: HostInfo): FactRequest<unknown>[] {
  return step.facts?.(params, host) ?? [];
}

/** The resources' own fact requests, each once. */
export function resourceFacts(resources: readonly Resource[]): FactRequest<unknown>[] {
  return [...new Map(resources.flatMap((r) => r.facts()).map((f) => [f.key, f])).values()];
}

/** A step's plan: each resource's actions in order; when there are none, the step's converged line. Pure. */
export function planStep(step: AnyStep, facts: FactValues, params: unknown, ctx: PlanContext): Plan {
  const resources = step.resources(facts, params, ctx);
  const duplicate = resources.find((r, i) => resources.findIndex((o) => o.id === r.id) !== i);
  if (duplicate) throw new Error(`bug: step ${step.id} declares ${duplicate.id} twice`);
  const actions: Action[] = resources.flatMap((r) => r.plan(facts));
  return plan(actions, step.converged(params, facts, ctx));
}

/** The ports all selected steps serve, each with the step that declared it. */
export function servedPorts(selected: readonly { step: AnyStep; params: unknown }[]): ServedPort[] {
  return selected.flatMap(({ step, params }) => (step.serves?.(params) ?? []).map((p) => ({ ...p, step: step.id })));
}
