import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-prov-cli-'));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
const key = execFileSync('cat', [join(dir, 'id.pub')]).toString().trim();

interface Run { code: number; stdout: string; stderr: string }

function zanuri(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, 'provision', ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

// Port 1 on loopback refuses at once: a run that got as far as connecting would exit 4, not 2.
const unreachable = ['--host', 'root@127.0.0.1:1', '-i', join(dir, 'id'), '--yes'];
const base = ['--playbook', 'base', '--set', `deploy-user.authorizedKeys=${JSON.stringify([key])}`];

describe('zanuri provision refuses bad input before any connection (exit 2)', () => {
  it('refuses hostile user names', async () => {
    for (const name of ['a;reboot', '$(id)', 'root\nx', "o'neil", 'UPPER']) {
      const run = await zanuri(...base, '--set', `deploy-user.name=${name}`, ...unreachable);
      expect(run.code, name).toBe(2);
      expect(run.stderr).toMatch(/deploy-user: name must be a user name/);
    }
  });

  it('refuses a parameter of the wrong type and an unknown parameter', async () => {
    const wrongType = await zanuri(...base, '--set', 'ssh-harden.maxAuthTries="three"', ...unreachable);
    expect(wrongType.code).toBe(2);
    expect(wrongType.stderr).toMatch(/maxAuthTries must be a whole number/);
    const unknown = await zanuri(...base, '--set', 'ssh-harden.permitRootLogn="no"', ...unreachable);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown parameter "permitRootLogn"/);
  });

  it('points at the file, line and column of a bad parameter written in a playbook', async () => {
    const playbook = join(dir, 'bad-params.yaml');
    writeFileSync(playbook, 'id: bad\nsteps:\n  - step: deploy-user\n  - step: ssh-harden\n    params:\n      allowUsers: [deploy, "bad user"]\n');
    const run = await zanuri('--playbook', playbook, '--set', `deploy-user.authorizedKeys=${JSON.stringify([key])}`, ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${playbook}:6:28: ssh-harden: allowUsers[1] must be a user name`);
  });

  it('refuses a template override directory whose file overrides no template, before any connection', async () => {
    const overrides = join(dir, 'overrides');
    execFileSync('mkdir', ['-p', join(overrides, 'ssh')]);
    writeFileSync(join(overrides, 'ssh', 'hardning.conf'), 'PasswordAuthentication no\n');
    const run = await zanuri(...base, '--templates', overrides, ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/overrides no template: there is no template named ssh\/hardning.conf/);
  });

  it('refuses an override that names a variable the step does not give, with its file:line, before any connection', async () => {
    const overrides = join(dir, 'overrides-typo');
    execFileSync('mkdir', ['-p', join(overrides, 'ssh')]);
    writeFileSync(join(overrides, 'ssh', 'hardening.conf'), 'PasswordAuthentication no\nMaxAuthTries {{maxAuthTrys}}\n');
    const run = await zanuri(...base, '--templates', overrides, ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${join(overrides, 'ssh', 'hardening.conf')}:2:1: template ssh/hardening.conf: unknown variable "maxAuthTrys"`);
  });

  it('takes a site profile\'s template overrides from the directory it names, relative to the profile file', async () => {
    const site = join(dir, 'site');
    execFileSync('mkdir', ['-p', join(site, 'overrides', 'ssh')]);
    writeFileSync(join(site, 'overrides', 'ssh', 'hardening.conf'), 'MaxAuthTries {{maxAuthTrys}}\n');
    writeFileSync(join(site, 'site-web.yaml'), [
      'id: site-web', 'system: Site', 'tier: production', 'rank: 1', 'title: Our web servers', "source: 'our own'",
      'playbook: base', 'templates: ./overrides', 'requirements:', '  - { id: cores, check: cpu.cores, level: required, min: 1, source: ours }', '',
    ].join('\n'));
    const run = await zanuri('--profile', join(site, 'site-web.yaml'), '--set', `deploy-user.authorizedKeys=${JSON.stringify([key])}`, ...unreachable);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`${join(site, 'overrides', 'ssh', 'hardening.conf')}:1:1: template ssh/hardening.conf: unknown variable "maxAuthTrys"`);
  });

  it('refuses an unknown step and an unknown playbook', async () => {
    const step = await zanuri(...base, '--only', 'nosuch', ...unreachable);
    expect(step.code).toBe(2);
    expect(step.stderr).toMatch(/unknown step "nosuch"/);
    const playbook = await zanuri('--playbook', 'nosuch', ...unreachable);
    expect(playbook.code).toBe(2);
    expect(playbook.stderr).toMatch(/unknown playbook "nosuch"/);
  });

  it('reports a malformed playbook with file:line:col', async () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, 'id: broken\nsteps:\n  - step: deploy-user\n    parms: {}\n');
    const run = await zanuri('--playbook', file, ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${file}:4:5: unknown key "parms" in a playbook step`);
  });

  it('refuses an operator key that is not a public key line', async () => {
    const run = await zanuri('--playbook', 'base', '--set', 'deploy-user.authorizedKeys=["ssh-ed25519 AAAA\\nrm -rf /"]', ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/authorizedKeys\[0\] must be an SSH public key line/);
  });

  it('will not change hosts without --yes when there is no terminal to ask on', async () => {
    const run = await zanuri(...base, '--host', 'root@127.0.0.1:1', '-i', join(dir, 'id'));
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/without confirmation/);
  });

  it('fails clearly on a machine without systemd (--local here)', async () => {
    const run = await zanuri(...base, '--local', '--yes', '--json');
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).hosts[0].error.message).toMatch(/needs systemd as the init system/);
  });
});
