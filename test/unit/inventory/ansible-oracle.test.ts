/**
 * The same inventory files read by zanuri and by the real Ansible (Debian's `ansible` package):
 * every host's merged variables and the host set of each --limit pattern must agree. Ansible is
 * installed with apt when missing and this runs as root; otherwise the test skips, and fails in CI.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../../src/inventory/load.js';
import { hostVariables, type Inventory } from '../../../src/inventory/model.js';
import { selectHosts } from '../../../src/inventory/pattern.js';
import { parseYamlText } from '../../../src/profiles/yaml.js';

const site = fileURLToPath(new URL('./fixtures/site/', import.meta.url));
const have = (): boolean => spawnSync('ansible-inventory', ['--version']).status === 0;

function ensureAnsible(): boolean {
  if (have()) return true;
  if (process.getuid?.() !== 0) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['-q', 'update'], { env, stdio: 'ignore', timeout: 300_000 });
  spawnSync('apt-get', ['-q', '-y', 'install', '--no-install-recommends', 'ansible'], { env, stdio: 'ignore', timeout: 600_000 });
  return have();
}

const available = ensureAnsible();

/** `ansible all -i FILE --limit P --list-hosts`: the host names, sorted. */
function ansibleHosts(file: string, limit: string): string[] {
  const run = spawnSync('ansible', ['all', '-i', file, '--limit', limit, '--list-hosts'], { encoding: 'utf8', env: { ...process.env, ANSIBLE_NOCOLOR: '1' } });
  const lines = run.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (!lines[0]?.startsWith('hosts (')) return []; // "No hosts matched": Ansible exits non-zero and lists none
  return lines.slice(1).sort();
}

const patterns = [
  'all', 'web', 'prod', 'staging', 'ungrouped', 'web01.example.com',
  'web0*', 'db-[ab]*', '*.example.com', 'web:db', 'prod:&staging', 'prod:!web',
  'all:!prod', 'prod:!web0[1-3]*', 'web,gpu', '~db-[a-c]', 'web[0]', 'web[1:2]', 'gpu:bastion:!gpu3', '!db',
];

describe.skipIf(!available && !process.env['CI'])('inventories read the same as the real ansible-inventory reads them', () => {
  const inventories: Record<string, Inventory> = {};

  beforeAll(async () => {
    if (!available) throw new Error('CI needs ansible (apt-get install ansible)');
    for (const name of ['hosts.ini', 'hosts.yml']) inventories[name] = await loadInventory(`${site}${name}`, parseYamlText);
  });

  for (const name of ['hosts.ini', 'hosts.yml']) {
    it(`gives every host of ${name} the variables Ansible gives it (group, child, group_vars/, host_vars/ precedence)`, () => {
      const listed = JSON.parse(execFileSync('ansible-inventory', ['-i', `${site}${name}`, '--list'], { encoding: 'utf8' })) as { _meta: { hostvars: Record<string, unknown> } };
      const inv = inventories[name] as Inventory;
      expect([...inv.hosts].sort()).toEqual(Object.keys(listed._meta.hostvars).sort());
      for (const host of inv.hosts) expect(hostVariables(inv, host), host).toEqual(listed._meta.hostvars[host] ?? {});
    });

    it(`selects the same hosts of ${name} as ansible --limit for ${patterns.length} patterns`, () => {
      const inv = inventories[name] as Inventory;
      for (const pattern of patterns) {
        const theirs = ansibleHosts(`${site}${name}`, pattern);
        expect([...selectHosts(inv, pattern)].sort(), pattern).toEqual(theirs);
      }
    });
  }
});
