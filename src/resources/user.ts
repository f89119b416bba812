import type { Action } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import { groupFact, userFact } from '../facts/state.js';
import type { Resource } from './types.js';

/**
 * Takes a user out of the supplementary groups a rollback gives back (gpasswd takes one group at a
 * time). Arguments: user group...
 */
const leaveGroupsScript = 'u=$1; shift; for g do gpasswd --delete "$u" "$g" >/dev/null || exit 1; done';

/**
 * Removes a user this run created, with the home directory useradd made for it (a system user has
 * none; a user already gone,
 * exit 6, is fine). Arguments: user. userdel refuses a user with running processes: the rollback then
 * fails loudly rather than leave a half-removed account.
 */
const removeUserScript = (home: boolean): string => `userdel${home ? ' --remove' : ''} -- "$1" || [ $? -eq 6 ]`;

/**
 * A local user with this login shell and at least these supplementary groups (groups it has
 * beyond them stay: taking access away is not a step's call). Created with a home directory.
 *
 * Every change carries its undo, so a step that fails after it (deploy-user's login proof with a
 * shell that cannot run a command) leaves the account as it found it: the shell it had, the groups
 * it had, or no account when this run created it.
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
          undo: { argv: ['sh', '-c', removeUserScript(!options.system), 'zanuri-userdel', name] },
          why: `user ${name} does not exist`,
        });
        return actions;
      }
      const missing = groups.filter((g) => !current.groups.includes(g));
      if (missing.length) {
        actions.push({
          kind: 'run', cmd: { argv: ['usermod', '--append', '--groups', missing.join(','), '--', name] },
          undo: { argv: ['sh', '-c', leaveGroupsScript, 'zanuri-groups', name, ...missing] },
          why: `${name} is not in ${missing.join(', ')}`,
        });
      }
      if (options.shell && current.shell !== options.shell) {
        const undo: Cmd | undefined = current.shell ? { argv: ['usermod', '--shell', current.shell, '--', name] } : undefined;
        actions.push({
          kind: 'run', cmd: { argv: ['usermod', '--shell', options.shell, '--', name] }, ...(undo ? { undo } : {}),
          why: `${name}'s shell is ${current.shell}, not ${options.shell}`,
        });
      }
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
