import type { Resource } from './types.js';

/**
 * A reboot checkpoint: when `needed` gives a reason, the engine reboots the host, waits for it to go
 * down and for SSH to answer again (bounded), and reads the facts of everything after it anew.
 */
export function reboot(id: string, needed: string | null): Resource {
  return {
    id: `reboot:${id}`,
    describe: `no reboot pending for ${id}`,
    checkpoint: true,
    facts: () => [],
    plan: () => (needed === null ? [] : [{ kind: 'reboot', why: needed }]),
  };
}
