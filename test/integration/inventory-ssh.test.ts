/**
 * An inventory's ansible_become, ansible_become_user and ansible_ssh_common_args/extra_args against a
 * real SSH target (needs root): the options zanuri honours reach the connection (the only key offered
 * comes from the arguments; ansible_become=false logs in as root without a user named), and a
 * refused option stops the run before anything is contacted (the target's sshd log shows no new login).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));

interface Run { code: number; stdout: string; stderr: string }

function zanuri(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

describe.skipIf(!can.ok && !process.env['CI'])('ssh arguments and become from an inventory, against a real target (needs root)', () => {
  let target: TestTarget;
  let dir: string;
  const inventory = (lines: string[]): string => {
    const file = join(dir, `hosts-${Math.random().toString(36).slice(2)}.ini`);
    writeFileSync(file, `[fleet]\n${lines.join('\n')}\n`);
    return file;
  };
  const check = (file: string): Promise<Run> => zanuri(['check', '--json', '--inventory', file, '-F', '/dev/null', '--known-hosts', target.knownHostsPath]);

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    [target] = await startTargets(1, { kind: 'light' }) as [TestTarget];
    dir = mkdtempSync(join(tmpdir(), 'zanuri-inventory-ssh-'));
  }, 300_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  it('connects with the port and key of ansible_ssh_common_args, as root when ansible_become is false', async () => {
    const file = inventory([
      `t1 ansible_host=${target.host} ansible_become=false ansible_become_user=root`
      + ` ansible_ssh_common_args='-C -o ControlMaster=auto -o ControlPersist=60s -o Port=${target.port}'`
      + ` ansible_ssh_extra_args='-o BatchMode=yes -i ${target.privateKeyPath}'`,
    ]);
    const run = await check(file);
    expect([0, 3], run.stderr).toContain(run.code);
    const report = JSON.parse(run.stdout) as { hosts: Array<{ host: string; error?: unknown; facts?: unknown }> };
    expect(report.hosts).toHaveLength(1);
    expect(report.hosts[0]?.error, run.stdout.slice(0, 2000)).toBeUndefined();
    expect(report.hosts[0]?.host).toBe('t1');
    // The target's sshd saw the key of the arguments accepted for root.
    expect(readFileSync(target.logPath, 'utf8')).toMatch(/Accepted publickey for root from/);
  }, 120_000);

  it('refuses ProxyCommand and a non-root become user with the file and host named, contacting nothing', async () => {
    const logBefore = readFileSync(target.logPath, 'utf8').length;
    const proxy = inventory([`t1 ansible_host=${target.host} ansible_ssh_common_args='-o ProxyCommand="nc %h %p" -i ${target.privateKeyPath}'`]);
    const refused = await check(proxy);
    expect(refused.code).toBe(2);
    // --json: the error is the report, and no host is in it.
    expect(JSON.parse(refused.stdout)).toEqual({ schemaVersion: 1, exitCode: 2, error: expect.objectContaining({ code: 'CONFIG', hint: expect.stringMatching(/ProxyJump/) }) });
    expect(refused.stderr).toContain(`${proxy}: host t1: ansible_ssh_common_args has -o ProxyCommand=nc %h %p, which zanuri does not honour`);
    const becomeUser = inventory([`t1 ansible_host=${target.host} ansible_become_user=postgres ansible_ssh_private_key_file=${target.privateKeyPath}`]);
    const refusedUser = await check(becomeUser);
    expect(refusedUser.code).toBe(2);
    expect(refusedUser.stderr).toContain(`${becomeUser}: host t1: ansible_become_user postgres: zanuri only becomes root`);
    const notRoot = inventory([`t1 ansible_host=${target.host} ansible_user=deploy ansible_become=false ansible_ssh_private_key_file=${target.privateKeyPath}`]);
    const refusedLogin = await check(notRoot);
    expect(refusedLogin.code).toBe(2);
    expect(refusedLogin.stderr).toContain('host t1: ansible_become is false, so zanuri logs in as root and never runs sudo, but the login user is deploy');
    // Nothing reached the target: its sshd logged no new connection.
    expect(readFileSync(target.logPath, 'utf8').slice(logBefore)).not.toMatch(/Connection from|Accepted/);
  }, 120_000);
});
