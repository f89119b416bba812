import type { Action, Handler } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import type { Resource } from './types.js';

/**
 * A command the step runs only when the facts say it is needed: `needed` is the reason (null: the
 * host is already as wanted). For state no other resource describes, e.g. a firewall rule or a role.
 */
export function command(id: string, needed: string | null, cmd: Cmd, options: { describe?: string; display?: string; undo?: Cmd; notify?: Handler[]; checkpoint?: boolean } = {}): Resource {
  return {
    id: `command:${id}`,
    describe: options.describe ?? id,
    ...(options.checkpoint ? { checkpoint: true } : {}),
    facts: () => [],
    plan(): Action[] {
      if (needed === null) return [];
      return [{
        kind: 'run', cmd, why: needed,
        ...(options.display ? { display: options.display } : {}),
        ...(options.undo ? { undo: options.undo } : {}),
        ...(options.notify ? { notify: options.notify } : {}),
      }];
    },
  };
}
