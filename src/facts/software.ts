import type { ProbeSection } from './probe.js';

/**
 * Versions of the software that requirement profiles name. Each tool prints its version its own
 * way; the probe keeps the first line of each, the parser pulls the first dotted number out of it.
 */
const versionCommands: Readonly<Record<string, { binary: string; command: string }>> = {
  docker: { binary: 'docker', command: 'docker --version' },
  python3: { binary: 'python3', command: 'python3 --version' },
  node: { binary: 'node', command: 'node --version' },
  // The server, not the psql client: Debian/Ubuntu install it under /usr/lib/postgresql/N, RHEL under /usr/pgsql-N.
  postgresql: {
    binary: 'sh',
    command: 'for p in /usr/lib/postgresql/*/bin/postgres /usr/pgsql-*/bin/postgres; do [ -x "$p" ] && "$p" --version; done | sort -V | tail -n1',
  },
  redis: { binary: 'redis-server', command: 'redis-server --version' },
  nginx: { binary: 'nginx', command: 'nginx -v 2>&1' },
  haproxy: { binary: 'haproxy', command: 'haproxy -v' },
  'nvidia-container-toolkit': { binary: 'nvidia-ctk', command: 'nvidia-ctk --version' },
  pm2: { binary: 'pm2', command: 'pm2 --version' },
  keepalived: { binary: 'keepalived', command: 'keepalived --version 2>&1' },
  prometheus: { binary: 'prometheus', command: 'prometheus --version 2>&1' },
  grafana: { binary: 'grafana', command: 'grafana server -v 2>&1' },
};

export const softwareNames = Object.keys(versionCommands);

/**
 * Version banners are the slowest part of the probe (interpreters start up), so they run at once:
 * each background job prints one short line, a single write(2) that pipes never interleave.
 */
export const softwareProbe: ProbeSection[] = [
  {
    name: 'software',
    script: [
      ...Object.entries(versionCommands).map(([name, { binary, command }]) =>
        `has ${binary} && ( v=$( (${command}) 2>/dev/null | head -n1) && [ -n "$v" ] && printf '%s\\t%s\\n' '${name}' "$v" ) &`),
      'wait',
    ].join('\n'),
  },
];

export function parseSoftware(text: string): Record<string, string> {
  const versions: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [name, output] = line.split('\t');
    if (!name || !output) continue;
    // redis prints "Redis server v=7.0.15 sha=..."; the rest print the version as the first dotted number.
    const version = /(?:^|[\s/v=])(\d+(?:\.\d+)+)/.exec(output)?.[1] ?? /(\d+)/.exec(output)?.[1];
    if (version) versions[name] = version;
  }
  return versions;
}
