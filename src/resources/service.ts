import type { Action } from '../core/plan.js';
import { serviceFact } from '../facts/state.js';
import type { Resource } from './types.js';

/**
 * A systemd unit enabled (or not) at boot and running (or not). Reloads and restarts after a change
 * come from the files that notify it, once per step; this resource only owns the unit's state.
 */
export function service(unit: string, options: { enabled?: boolean; running?: boolean } = {}): Resource {
  const enabled = options.enabled ?? true;
  const running = options.running ?? true;
  const state = serviceFact(unit);
  return {
    id: `service:${unit}`,
    describe: `${unit} is ${enabled ? 'enabled' : 'disabled'} and ${running ? 'running' : 'stopped'}`,
    facts: () => [state],
    plan(facts) {
      const current = facts.get(state);
      // static and indirect units cannot be enabled; generated and alias ones follow another unit.
      const isEnabled = ['enabled', 'enabled-runtime', 'static', 'indirect', 'generated', 'alias'].includes(current.enabled);
      const isRunning = current.active === 'active';
      const actions: Action[] = [];
      const now = `${unit} is ${current.enabled} and ${current.active}`;
      if (enabled && running && (!isEnabled || !isRunning)) {
        actions.push({ kind: 'service', unit, op: isEnabled ? 'start' : 'enable-now', why: now });
        return actions;
      }
      if (enabled && !isEnabled) actions.push({ kind: 'service', unit, op: 'enable', why: `${now}: it would not start at boot` });
      if (!enabled && current.enabled === 'enabled') actions.push({ kind: 'service', unit, op: 'disable', why: `${now}: it must not start at boot` });
      if (running && !isRunning) actions.push({ kind: 'service', unit, op: 'start', why: now });
      if (!running && isRunning) actions.push({ kind: 'service', unit, op: 'stop', why: now });
      return actions;
    },
  };
}
