import type { Action } from '../core/plan.js';
import { aptRemoveCmd } from './apt.js';
import { heldPackagesFact, packagesFact } from '../facts/state.js';
import type { Resource } from './types.js';

export type PackageState = 'present' | 'held' | 'absent';

const list = (names: readonly string[]): string => names.join(', ');

/**
 * Debian packages installed (never upgraded), installed and held at their version (apt-mark hold:
 * no upgrade, unattended or not, replaces them), or absent. A checkpoint: what comes after it is
 * planned again once the packages exist.
 */
export function packages(names: readonly string[], options: { state?: PackageState; why?: string } = {}): Resource {
  const state = options.state ?? 'present';
  const sorted = [...new Set(names)].sort();
  const installed = packagesFact(sorted);
  const held = heldPackagesFact();
  return {
    id: `packages:${state}:${sorted.join(',')}`,
    describe: state === 'absent' ? `${list(sorted)} not installed` : `${list(sorted)} installed${state === 'held' ? ' and held' : ''}`,
    checkpoint: true,
    facts: () => (state === 'held' ? [installed, held] : [installed]),
    plan(facts) {
      const versions = facts.get(installed);
      const actions: Action[] = [];
      if (state === 'absent') {
        const present = sorted.filter((n) => versions[n] !== null);
        if (present.length) {
          actions.push({
            kind: 'run', cmd: aptRemoveCmd(present),
            why: options.why ?? `${list(present)} ${present.length === 1 ? 'is' : 'are'} installed`,
          });
        }
        return actions;
      }
      const missing = sorted.filter((n) => versions[n] === null);
      if (missing.length) actions.push({ kind: 'packages', install: missing, why: options.why ?? `${list(missing)} not installed` });
      if (state === 'held') {
        const onHold = new Set(facts.get(held));
        const loose = sorted.filter((n) => !onHold.has(n));
        if (loose.length) {
          actions.push({
            kind: 'run', cmd: { argv: ['apt-mark', 'hold', '--', ...loose] }, undo: { argv: ['apt-mark', 'unhold', '--', ...loose] },
            why: `${list(loose)} ${loose.length === 1 ? 'is' : 'are'} not held: an upgrade could replace ${loose.length === 1 ? 'it' : 'them'} unasked`,
          });
        }
      }
      return actions;
    },
  };
}
