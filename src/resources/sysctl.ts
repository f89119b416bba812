import { sysctlFact } from '../facts/state.js';
import type { Resource } from './types.js';

/**
 * A kernel parameter's running value. Persistence across reboots is a file in /etc/sysctl.d that
 * the step declares beside it; this applies the value now, and rollback puts the old one back.
 */
export function sysctl(key: string, value: string | number): Resource {
  const wanted = String(value).trim().split(/\s+/).join(' ');
  const state = sysctlFact(key);
  return {
    id: `sysctl:${key}`,
    describe: `${key} = ${wanted}`,
    facts: () => [state],
    plan(facts) {
      const current = facts.get(state);
      // A parameter this kernel (or this container) does not have cannot be set: nothing to do, and no failure.
      if (current === null || current === wanted) return [];
      return [{ kind: 'run', cmd: { argv: ['sysctl', '-q', '-w', `${key}=${wanted}`] }, undo: { argv: ['sysctl', '-q', '-w', `${key}=${current}`] }, why: `${key} is ${current}, not ${wanted}` }];
    },
  };
}
