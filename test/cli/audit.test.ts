import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-audit-cli-'));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);

interface Run { code: number; stdout: string; stderr: string }

function audit(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, 'audit', ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

// Port 1 on loopback refuses at once.
const unreachable = ['--host', 'root@127.0.0.1:1', '-i', join(dir, 'id'), '-F', '/dev/null'];

describe('zanuri audit on the command line', () => {
  it('reports an unreachable host in --json with its error and exit 4, not as a clean audit', async () => {
    const run = await audit(...unreachable, '--json');
    expect(run.code).toBe(4);
    const json = JSON.parse(run.stdout) as { schemaVersion: number; exitCode: number; failOn: string; hosts: { ok: boolean; error?: { code: string } }[] };
    expect(json).toMatchObject({ schemaVersion: 1, exitCode: 4, failOn: 'high' });
    expect(json.hosts[0]?.ok).toBe(false);
    expect(json.hosts[0]?.error?.code).toBe('UNREACHABLE');
  });

  it('refuses --profile with --playbook, an unknown playbook and a bad --fail-on before any connection (exit 2)', async () => {
    const both = await audit('--profile', 'zanuri-dev', '--playbook', 'hardened', ...unreachable);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('name at most one of --profile or --playbook');
    const unknown = await audit('--playbook', 'no-such-playbook', ...unreachable);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown playbook "no-such-playbook"');
    const failOn = await audit('--fail-on', 'severe', ...unreachable, '--json');
    expect(failOn.code).toBe(2);
    expect(failOn.stderr).toContain('--fail-on must be one of info, low, medium, high, critical or none');
  });

  it('checks --set values as provision does (bad values exit 2 before any connection)', async () => {
    const run = await audit('--set', 'ufw.adminFrom=["cafe"]', ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('adminFrom[0] must be an IPv4 or IPv6 address or CIDR');
  });

  it('lists the hosts an inventory selects and contacts nothing', async () => {
    const inventory = join(dir, 'hosts.ini');
    writeFileSync(inventory, '[web]\nweb1 ansible_host=127.0.0.1 ansible_port=1\nweb2 ansible_host=127.0.0.1 ansible_port=1\n');
    const run = await audit('--inventory', inventory, '--list-hosts');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('web1\nweb2\n');
  });
});
