import type { Action } from '../core/plan.js';
import { groupFact, userFact } from '../facts/state.js';
import type { Resource } from './types.js';

/**
 * A local user with this login shell and at least these supplementary groups (groups it has
 * beyond them stay: taking access away is not a step's call). Created with a home directory.
 */
export function user(name: string, options: { shell?: string; groups?: readonly string[]; system?: boolean } = {}): Resource {
  const state = userFact(name);
  const groups = [...(options.groups ?? [])];
  return {
    id: `user:${name}`,
    describe: `user ${name} exists${groups.length ? ` in ${groups.join(', ')}` : ''}`,
    facts: () => [state],
    plan(facts) {
      const current = facts.get(state);
      const actions: Action[] = [];
      if (!current.exists) {
        actions.push({
          kind: 'run',
          cmd: { argv: ['useradd', ...(options.system ? ['--system'] : ['--create-home']), ...(options.shell ? ['--shell', options.shell] : []), ...(groups.length ? ['--groups', groups.join(',')] : []), '--', name] },
          why: `user ${name} does not exist`,
        });
        return actions;
      }
      const missing = groups.filter((g) => !current.groups.includes(g));
      if (missing.length) actions.push({ kind: 'run', cmd: { argv: ['usermod', '--append', '--groups', missing.join(','), '--', name] }, why: `${name} is not in ${missing.join(', ')}` });
      if (options.shell && current.shell !== options.shell) actions.push({ kind: 'run', cmd: { argv: ['usermod', '--shell', options.shell, '--', name] }, why: `${name}'s shell is ${current.shell}, not ${options.shell}` });
      return actions;
    },
  };
}

export function group(name: string, options: { system?: boolean } = {}): Resource {
  const state = groupFact(name);
  return {
    id: `group:${name}`,
    describe: `group ${name} exists`,
    facts: () => [state],
    plan: (facts) => (facts.get(state).exists ? [] : [{ kind: 'run', cmd: { argv: ['groupadd', ...(options.system ? ['--system'] : []), '--', name] }, why: `group ${name} does not exist` }]),
  };
}
