import type { NicFact } from './types.js';
import type { ProbeSection } from './probe.js';

export const networkProbe: ProbeSection[] = [
  {
    name: 'nics',
    // One line per interface: name, speed (Mbit/s, -1 or empty when unknown), operstate, physical.
    script: [
      // `read` is a shell builtin: no process per file. speed cannot be read while the link is down.
      'for n in /sys/class/net/*; do',
      '  [ -e "$n" ] || continue',
      '  p=virtual; [ -e "$n/device" ] && p=physical',
      '  s=; o=; read -r s < "$n/speed" 2>/dev/null; read -r o < "$n/operstate" 2>/dev/null',
      '  printf \'%s\\t%s\\t%s\\t%s\\n\' "${n##*/}" "$s" "$o" "$p"',
      'done',
    ].join('\n'),
  },
];

export function parseNics(text: string): NicFact[] {
  const nics: NicFact[] = [];
  for (const line of text.split('\n')) {
    const [name, speed, operstate, kind] = line.split('\t');
    if (!name || name === 'lo') continue;
    const mbps = Number.parseInt(speed ?? '', 10);
    nics.push({
      name,
      speedMbps: Number.isFinite(mbps) && mbps > 0 ? mbps : null,
      operstate: operstate || null,
      physical: kind === 'physical',
    });
  }
  return nics;
}
