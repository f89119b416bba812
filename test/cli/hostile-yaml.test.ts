/**
 * Hostile profiles, playbooks and inventories: duplicate keys, custom tags, shell syntax and
 * option-like values in their fields, .. paths, step ids that are paths, and a file that is not
 * what it was named as (--profile /etc/shadow). Each is refused with exit 2 and file:line where
 * the file says it, before any connection (every host is a local listener that records
 * connections), never echoing the file's lines; a marker file proves no command in them ran.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-hostile-yaml-'));
const markers = join(dir, 'markers');
mkdirSync(markers);
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
const key = execFileSync('cat', [join(dir, 'id.pub')]).toString().trim();
const touch = (name: string): string => `touch ${markers}/${name}`;

let connections = 0;
const listener = createServer((socket) => { connections += 1; socket.destroy(); });
let port = 0;
beforeAll(async () => {
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const address = listener.address();
  port = typeof address === 'object' && address ? address.port : 0;
});
afterAll(async () => {
  await new Promise((resolve) => listener.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

interface Run { code: number; stdout: string; stderr: string }
function zanuri(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const host = (): string[] => ['--host', `root@127.0.0.1:${port}`, '-F', '/dev/null', '-i', join(dir, 'id'), '--connect-timeout', '5'];
const keys = ['--set', `deploy-user.authorizedKeys=${JSON.stringify([key])}`];
const shadowLike = 'root:$y$j9T$Yaml.Secret.Hash$abcdefgh:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n';

interface Case { name: string; args: () => string[]; says: RegExp }

const cases: Case[] = [
  {
    name: 'a duplicate key in a playbook',
    args: () => ['provision', '--yes', ...keys, ...host(), '--playbook', file('dup-playbook.yaml', 'id: dup\nsteps:\n  - step: deploy-user\n    params:\n      name: deploy\n      name: root\n')],
    says: /dup-playbook\.yaml:\d+:\d+: .*(?:unique|duplicate)/i,
  },
  {
    name: 'a duplicate key in a profile',
    args: () => ['check', ...host(), '--profile', file('dup-profile.yaml', 'id: dup\ntitle: dup\nid: other\nrequirements: []\n')],
    says: /dup-profile\.yaml:\d+:\d+: .*(?:unique|duplicate)/i,
  },
  {
    name: 'an !include tag in a profile',
    args: () => ['check', ...host(), '--profile', file('tag-profile.yaml', 'id: tag\ntitle: !include /etc/passwd\nrequirements: []\n')],
    says: /tag-profile\.yaml:2:\d+: unknown YAML tag/,
  },
  {
    name: 'a !ruby/object tag in an inventory',
    args: () => ['check', '--inventory', file('tag-inventory.yaml', `all:\n  hosts:\n    h1:\n      ansible_host: !ruby/object "127.0.0.1"\n      ansible_port: ${port}\n`), '-F', '/dev/null', '-i', join(dir, 'id')],
    says: /tag-inventory\.yaml:4:\d+: unknown YAML tag/,
  },
  {
    name: 'a playbook step id that is a path',
    args: () => ['provision', '--yes', ...host(), '--playbook', file('path-step.yaml', 'id: p\nsteps:\n  - step: ../../../tmp/evil\n')],
    says: /unknown step "\.\.\/\.\.\/\.\.\/tmp\/evil"/,
  },
  {
    name: 'a playbook step id with shell syntax',
    args: () => ['provision', '--yes', ...host(), '--playbook', file('shell-step.yaml', `id: p\nsteps:\n  - step: "deploy-user; ${touch('step')}"\n`)],
    says: /unknown step "deploy-user; touch/,
  },
  {
    name: 'shell syntax in a playbook parameter, reported where the playbook writes it',
    args: () => ['provision', '--yes', ...keys, ...host(), '--playbook', file('param.yaml', `id: p\nsteps:\n  - step: deploy-user\n    params:\n      name: "deploy$(${touch('param')})"\n`)],
    says: /param\.yaml:5:\d+: deploy-user: name must be a user name/,
  },
  {
    name: 'an option-like value in a playbook parameter',
    args: () => ['provision', '--yes', ...keys, ...host(), '--playbook', file('option.yaml', `id: p\nsteps:\n  - step: deploy-user\n    params:\n      shell: "-oProxyCommand=${touch('option')}"\n`)],
    says: /option\.yaml:5:\d+: deploy-user: shell must be an absolute path/,
  },
  {
    name: 'a .. path as a profile\'s playbook',
    args: () => ['provision', '--yes', ...keys, ...host(), '--profile', file('dotdot-profile.yaml', `id: dd\ntitle: dd\nextends: zanuri-dev\nplaybook: ../../../../etc/shadow\n`)],
    says: /playbook/,
  },
  {
    name: 'a profile that extends a path',
    args: () => ['check', ...host(), '--profile', file('extends.yaml', 'id: ex\ntitle: ex\nextends: ../../etc/passwd\nrequirements: []\n')],
    says: /extends|does not exist/,
  },
  {
    name: 'a shadow-like file as --profile, without its lines',
    args: () => ['check', ...host(), '--json', '--profile', file('shadow-profile', shadowLike)],
    says: /shadow-profile:1:1: unknown key \(a key that is not a plain name/,
  },
  {
    name: 'a shadow-like file as --playbook, without its lines',
    args: () => ['provision', '--yes', '--json', ...host(), '--playbook', file('shadow-playbook', shadowLike)],
    says: /shadow-playbook:1:1: unknown key \(a key that is not a plain name/,
  },
  {
    name: 'an option-like ansible_host',
    args: () => ['check', '--inventory', file('option-inventory.yaml', `all:\n  hosts:\n    h1:\n      ansible_host: "-oProxyCommand=${touch('host')}"\n`), '-F', '/dev/null'],
    says: /is not a host zanuri can reach/,
  },
  {
    name: 'shell syntax in an inventory host name and ansible_user',
    args: () => ['check', '--inventory', file('shell-inventory.yaml', `all:\n  hosts:\n    "h1;${touch('name')}":\n      ansible_user: "root$(${touch('user')})"\n      ansible_port: ${port}\n`), '-F', '/dev/null'],
    says: /is not a host zanuri can reach/,
  },
  {
    name: 'shell syntax in an inventory ansible_port',
    args: () => ['check', '--inventory', file('port-inventory.yaml', `all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.1\n      ansible_port: "${port}; ${touch('port')}"\n`), '-F', '/dev/null'],
    says: /port/,
  },
  {
    name: 'a hostile zanuri_set in an inventory',
    args: () => ['provision', '--yes', '--playbook', 'base', ...keys, '--inventory', file('set-inventory.yaml', `all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.1\n      ansible_port: ${port}\n      zanuri_set: ["deploy-user.name=$(${touch('set')})"]\n`), '-F', '/dev/null', '-i', join(dir, 'id')],
    says: /deploy-user: name must be a user name/,
  },
];

describe('hostile profiles, playbooks and inventories are refused before any connection (exit 2)', () => {
  it.each(cases)('refuses $name', async ({ args, says }) => {
    const run = await zanuri(args());
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(says);
    expect(run.stderr).not.toMatch(/internal error|\n\s+at .*\.js:\d+/);
    expect(run.stdout + run.stderr).not.toContain('Yaml.Secret.Hash');
    expect(run.stdout + run.stderr).not.toContain('daemon:*');
  });

  it('made no connection and ran no command from any of them', () => {
    expect(connections).toBe(0);
    expect(readdirSync(markers)).toEqual([]);
  });
});
