import type { FactRequest, FactValues } from '../../../src/facts/state.js';
import type { Plan } from '../../../src/core/plan.js';
import { planStep } from '../../../src/steps/plan.js';
import type { AnyStep, PlanContext } from '../../../src/steps/types.js';
import { loadTemplates } from '../../../src/templates/load.js';

/** Fact values for plan() tests: each request's captured output, parsed by the request's own parser. */
export function factsOf(entries: Array<[FactRequest<unknown>, string]>): FactValues {
  const values = new Map(entries.map(([request, output]) => [request.key, request.parse(output)]));
  return {
    get<T>(request: FactRequest<T>): T {
      if (!values.has(request.key)) throw new Error(`test gave no output for ${request.key}`);
      return values.get(request.key) as T;
    },
  };
}

export const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');

/** The shipped templates, as a real run loads them. */
export const templates = await loadTemplates();
export const ctx: PlanContext = { loginUser: 'root', sshPort: 22, local: false, templates, served: [] };

/** A step's plan from captured fact outputs, through the engine's own planner. */
export function planOf(step: AnyStep, entries: Array<[FactRequest<unknown>, string]>, params: unknown, context: Partial<PlanContext> = {}): Plan {
  return planStep(step, factsOf(entries), params, { ...ctx, ...context });
}

/** What a file fact prints for a present file. */
export const present = (text: string | Buffer, mode = '644', owner = 'root', group = owner): string => `present ${mode} ${owner} ${group}\n${b64(text)}`;
