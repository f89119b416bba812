/**
 * `zanuri provision --local` as a first boot runs it: zanuri itself inside a real systemd target,
 * converging the machine it runs on, twice (needs root). Node and the built package are copied
 * into the target; nothing reaches it over SSH.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The package as npm would install it: the built CLI, data files and production dependencies only. */
function packageTarball(): string {
  const deps = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root }).toString().split('\n')
    .filter((p) => p.includes('/node_modules/')).map((p) => p.slice(root.length + 1));
  const tar = execFileSync('tar', ['-czf', '-', '-C', root, 'bin', 'dist', 'profiles', 'playbooks', 'package.json', ...deps,
    '-C', '/usr/bin', '--transform', 's,^node$,node-bin/node,', 'node'], { maxBuffer: 512 * 1024 * 1024 });
  return tar.toString('base64');
}

describe.skipIf(!can.ok && !process.env['CI'])('provision --local inside a real systemd machine (needs root)', () => {
  let target: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [target] = (await startTargets(1)) as [TestTarget];
    // Node's own runtime library, then zanuri as a first-boot script would have it.
    const apt = await target.exec(['sh', '-c', 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libstdc++6'], { timeoutMs: 300_000 });
    expect(apt.exitCode, apt.stderr).toBe(0);
    const copy = await target.exec(['sh', '-c', 'mkdir -p /opt/zanuri && base64 -d | tar -xzf - -C /opt/zanuri'], { stdin: packageTarball(), timeoutMs: 300_000 });
    expect(copy.exitCode, copy.stderr).toBe(0);
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  it('converges the machine it runs on, then finds nothing to do', async () => {
    const run = (): Promise<{ exitCode: number; stdout: string; stderr: string }> => target.exec(['/opt/zanuri/node-bin/node', '/opt/zanuri/bin/zanuri.js', 'provision', '--local',
      '--playbook', 'hardened', '--yes', '--json', '--set', `deploy-user.authorizedKeys=${JSON.stringify([target.publicKey])}`], { timeoutMs: 600_000 });
    const first = await run();
    expect(first.exitCode, first.stderr + first.stdout.slice(-2000)).toBe(0);
    const report = JSON.parse(first.stdout).hosts[0];
    expect(report).toMatchObject({ host: 'local', ok: true });
    expect(report.summary.changed).toBeGreaterThanOrEqual(5);
    const second = JSON.parse((await run()).stdout).hosts[0];
    expect(second.summary.changed).toBe(0);
    expect(second.steps.every((s: { status: string }) => s.status === 'unchanged')).toBe(true);
    expect((await target.exec(['ufw', 'status'])).stdout).toMatch(/Status: active/);
    expect((await target.exec(['systemctl', 'is-active', 'fail2ban'])).stdout.trim()).toBe('active');
    // SSH still works from outside after the machine hardened itself.
    const ssh = execFileSync('ssh', [...target.sshArgs(), 'true'], { timeout: 30_000 });
    expect(ssh).toBeDefined();
  });
});
