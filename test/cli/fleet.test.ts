import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const site = fileURLToPath(new URL('../unit/inventory/fixtures/site/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-fleet-cli-'));

interface Run { code: number; stdout: string; stderr: string }

function zanuri(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

describe('zanuri with --inventory', () => {
  it('lists the hosts a --limit selects, one a line, for check and provision alike, contacting none', async () => {
    for (const command of ['check', 'provision']) {
      const run = await zanuri(command, '--inventory', `${site}hosts.yml`, '--limit', 'prod:&staging:!db', '--list-hosts');
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toBe('web04.example.com\n');
    }
  });

  it('refuses a --limit that selects nothing, naming the pattern (exit 2)', async () => {
    const run = await zanuri('check', '--inventory', `${site}hosts.ini`, '--limit', 'nosuchgroup');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--limit "nosuchgroup" selects no host');
  });

  it('refuses --limit without an inventory, and --host with one', async () => {
    expect((await zanuri('check', '--limit', 'web')).stderr).toMatch(/--limit selects hosts of an inventory/);
    const both = await zanuri('provision', '--playbook', 'base', '--inventory', `${site}hosts.ini`, '--host', 'a');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--host and --inventory exclude each other/);
  });

  it('reports a malformed inventory with its file and line, before any connection', async () => {
    const bad = join(dir, 'bad.ini');
    writeFileSync(bad, '[web]\nw1\n[web:oops]\n');
    const run = await zanuri('check', '--inventory', bad, '--json');
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error).toMatchObject({ code: 'CONFIG', message: expect.stringContaining(`${bad}:3: section [web:oops]`) });
  });

  it('refuses to provision a host whose key file is missing, and one without a profile, before any connection', async () => {
    const gpu = await zanuri('provision', '--inventory', `${site}hosts.ini`, '--limit', 'gpu1', '--playbook', 'base', '--dry-run');
    expect(gpu.code).toBe(2);
    expect(gpu.stderr).toMatch(/host gpu1: cannot read its key file .*\(ansible_ssh_private_key_file, or -i in its ssh args\)/);
    const bastion = await zanuri('provision', '--inventory', `${site}hosts.ini`, '--limit', 'bastion', '--dry-run');
    expect(bastion.code).toBe(2);
    expect(bastion.stderr).toMatch(/host bastion has no profile to provision with/);
  });

  it('refuses a --serial or --max-fail-percent that is not a size or a share', async () => {
    for (const [flag, value] of [['--serial', '0'], ['--serial', '150%'], ['--max-fail-percent', '101'], ['--forks', '0']]) {
      const run = await zanuri('provision', '--playbook', 'base', '--inventory', `${site}hosts.ini`, '--dry-run', flag as string, value as string);
      expect(run.code, `${flag} ${value}`).toBe(2);
      expect(run.stderr, `${flag} ${value}`).toContain(flag as string);
    }
  });
});
