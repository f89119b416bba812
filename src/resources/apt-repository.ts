import type { Content } from '../core/content.js';
import type { Action } from '../core/plan.js';
import { aptUpdateCmd } from './apt.js';
import { file } from './file.js';
import type { Resource } from './types.js';

export const keyringPath = (name: string): string => `/etc/apt/keyrings/zanuri-${name}.asc`;
export const sourcesPath = (name: string): string => `/etc/apt/sources.list.d/zanuri-${name}.sources`;

/**
 * An apt repository as a deb822 .sources file whose Signed-By names its own keyring (never
 * apt-key, never a key trusted for every repository), then `apt-get update`. A checkpoint: the
 * packages after it are planned again once the new lists are read.
 * `sources` must name keyringPath(name) in its Signed-By field.
 */
export function aptRepository(name: string, options: { sources: Content; key: Content }): Resource {
  const keyring = file(keyringPath(name), options.key, { mode: 0o644, whyMissing: `the ${name} repository's signing key is not installed` });
  const sources = file(sourcesPath(name), options.sources, {
    mode: 0o644, whyMissing: `the ${name} repository is not configured`,
    validate: { argv: ['sh', '-c', 'grep -q "^Signed-By: $2\\$" "$1"', 'zanuri-sources', '{}', keyringPath(name)] },
  });
  return {
    id: `apt-repository:${name}`,
    describe: `the ${name} apt repository is configured with its own keyring`,
    checkpoint: true,
    facts: () => [...keyring.facts(), ...sources.facts()],
    plan(facts) {
      const actions: Action[] = [...keyring.plan(facts), ...sources.plan(facts)];
      if (actions.length) actions.push({ kind: 'run', cmd: aptUpdateCmd, why: `apt reads the ${name} repository's package lists` });
      return actions;
    },
  };
}
