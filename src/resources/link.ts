import type { Handler } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import { linkFact } from '../facts/state.js';
import type { Resource } from './types.js';

/** A symbolic link at `path` to `target`; with target null, no link there. */
export function link(path: string, target: string | null, options: { why?: string; notify?: Handler[]; validateInPlace?: Cmd } = {}): Resource {
  const state = linkFact(path);
  return {
    id: `link:${path}`,
    describe: target === null ? `${path} is not a link` : `${path} links to ${target}`,
    facts: () => [state],
    plan(facts) {
      const before = facts.get(state);
      if (before === target) return [];
      const why = options.why ?? (target === null ? `${path} links to ${before}` : before === null ? `${path} does not link to ${target}` : `${path} links to ${before}, not ${target}`);
      return [{
        kind: 'link', path, target, before, why,
        ...(options.notify ? { notify: options.notify } : {}),
        ...(options.validateInPlace ? { validateInPlace: options.validateInPlace } : {}),
      }];
    },
  };
}
