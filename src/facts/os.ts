import type { OsFacts } from './types.js';
import type { ProbeSection } from './probe.js';

export const osProbe: ProbeSection[] = [
  { name: 'os-release', script: 'cat /etc/os-release || cat /usr/lib/os-release' },
  { name: 'uname', script: 'uname -r; uname -m' },
  { name: 'init', script: 'cat /proc/1/comm' },
];

/** Parses os-release(5): KEY=value lines, values optionally in single or double quotes. */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match?.[1]) continue;
    let value = match[2] ?? '';
    const quoted = /^"(.*)"$/.exec(value) ?? /^'(.*)'$/.exec(value);
    if (quoted) value = (quoted[1] ?? '').replace(/\\(["$`\\])/g, '$1');
    fields[match[1]] = value;
  }
  return fields;
}

export function osFacts(osRelease: string, uname: string, init: string): OsFacts {
  const release = parseOsRelease(osRelease);
  const [kernel, arch] = uname.split('\n').map((l) => l.trim());
  return {
    id: release['ID']?.toLowerCase() || null,
    idLike: (release['ID_LIKE'] ?? '').split(/\s+/).filter(Boolean),
    versionId: release['VERSION_ID'] || null,
    prettyName: release['PRETTY_NAME'] || null,
    kernel: kernel || null,
    arch: arch || null,
    initSystem: init.trim() || null,
  };
}
