import { octal } from '../core/plan.js';
import { directoryFact } from '../facts/state.js';
import type { Resource } from './types.js';

/** A directory with this mode, owner and group (parents are created as needed). */
export function directory(path: string, options: { mode?: number; owner?: string; group?: string; why?: string } = {}): Resource {
  const mode = options.mode ?? 0o755;
  const owner = options.owner ?? 'root';
  const group = options.group ?? owner;
  const state = directoryFact(path);
  return {
    id: `directory:${path}`,
    describe: `${path}/ exists (${octal(mode)} ${owner}:${group})`,
    facts: () => [state],
    plan(facts) {
      const current = facts.get(state);
      if (current.exists && current.mode === mode && current.owner === owner && current.group === group) return [];
      const before = current.exists && current.mode !== null && current.owner !== null && current.group !== null
        ? { mode: current.mode, owner: current.owner, group: current.group } : null;
      const why = before
        ? `${path}/ is ${octal(before.mode)} ${before.owner}:${before.group}, not ${octal(mode)} ${owner}:${group}`
        : options.why ?? `${path}/ does not exist`;
      return [{ kind: 'directory', path, mode, owner, group, before, why }];
    },
  };
}
