import type { ProbeSection } from './probe.js';
import type { RebootFacts } from './types.js';

/**
 * Debian and Ubuntu packages whose fix needs a reboot (kernel, glibc, OpenSSL, systemd) create
 * /var/run/reboot-required and list themselves in reboot-required.pkgs; until the reboot the host
 * runs the old code.
 */
export const rebootProbe: ProbeSection[] = [
  { name: 'reboot-required', script: 'if [ -e /var/run/reboot-required ]; then echo required; cat /var/run/reboot-required.pkgs; else echo none; fi' },
];

export function parseRebootRequired(text: string): RebootFacts {
  const [state, ...pkgs] = text.trim().split('\n');
  if (state !== 'required' && state !== 'none') return { required: null, packages: [] };
  return { required: state === 'required', packages: [...new Set(pkgs.map((p) => p.trim()).filter(Boolean))].sort() };
}
