/**
 * A change the service or the login refuses, on a real systemd target (needs root), each ending with
 * "the next run converges, nothing lost":
 * - node_exporter told to listen on port 81: the schema takes any port, node_exporter (user
 *   prometheus) cannot bind below 1024 and never answers. The step is reported rolled back, the
 *   previous arguments are back byte for byte, and the service runs and answers on 9100 again.
 * - deploy-user.shell=/usr/sbin/nologin: the login proof fails. The rolled-back step leaves the
 *   user's shell as it was (an existing user) or no user at all (one this run created), so the
 *   operator can still log in as the deploy user.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { operatorKeyArgs, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const exporter = 'test/integration/playbooks/node-exporter.yaml';
const deployUser = 'test/integration/playbooks/deploy-user.yaml';

describe.skipIf(!can.ok && !process.env['CI'])('provision: a change the service or the login refuses is rolled back (needs root)', () => {
  let t: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [t] = (await startTargets(1)) as [TestTarget];
  }, 300_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  const sh = async (script: string): Promise<string> => {
    const r = await t.exec(['sh', '-c', script], { timeoutMs: 120_000 });
    expect(r.exitCode, `${script}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };
  /** node_exporter's metrics, asked on the target itself. */
  const metrics = async (port: number): Promise<string> =>
    (await t.exec(['bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port} && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 10 cat <&3 | grep -c '^node_exporter_build_info'`])).stdout;

  async function converged(args: string[], user = 'root'): Promise<void> {
    const dry = await zanuriProvision(t, [...args, '--dry-run'], user);
    expect(dry.host.error, dry.stdout).toBeUndefined();
    expect(dry.host.steps.filter((s) => s.status !== 'unchanged'), 'the next run finds nothing to do').toEqual([]);
  }

  it('rolls node_exporter back to its previous arguments when it cannot start on a port the schema accepts, and it serves on 9100 again', async () => {
    const first = await zanuriProvision(t, ['--playbook', exporter]);
    expect(first.code, first.stdout).toBe(0);
    const before = await sh('stat -c "%a %U:%G" /etc/default/prometheus-node-exporter; cat /etc/default/prometheus-node-exporter');
    expect(before).toContain('--web.listen-address=:9100');

    const bad = await zanuriProvision(t, ['--playbook', exporter, '--set', 'node-exporter.port=81']);
    expect(bad.code, bad.stdout).toBe(6);
    const step = bad.host.steps.find((s) => s.id === 'node-exporter');
    expect(step?.status, JSON.stringify(step)).toBe('rolled-back');
    expect(step?.why).toMatch(/^rolled back: GET http:\/\/127\.0\.0\.1:81\/metrics \(node_exporter does not answer\)/);
    expect(step?.actions.map((a) => a.summary)).toEqual(['update /etc/default/prometheus-node-exporter (root:root 0644)']);

    expect(await sh('stat -c "%a %U:%G" /etc/default/prometheus-node-exporter; cat /etc/default/prometheus-node-exporter'), 'the previous configuration is back').toBe(before);
    expect((await sh('systemctl is-active prometheus-node-exporter.service || true')).trim()).toBe('active');
    // The rollback restarted it with the old arguments: it answers on 9100 (retried while it starts).
    let answered = '';
    for (let i = 0; i < 30 && answered.trim() !== '1'; i += 1) {
      answered = await metrics(9100);
      if (answered.trim() !== '1') await new Promise((r) => setTimeout(r, 500));
    }
    expect(answered.trim()).toBe('1');
    await converged(['--playbook', exporter]);
  }, 900_000);

  it('puts an existing deploy user\'s shell back when the new shell fails the login proof, and the operator still logs in as that user', async () => {
    const args = ['--playbook', deployUser, ...operatorKeyArgs(t)];
    const first = await zanuriProvision(t, args);
    expect(first.code, first.stdout).toBe(0);
    expect((await sh('getent passwd deploy')).trim()).toMatch(/:\/bin\/bash$/);

    const bad = await zanuriProvision(t, [...args, '--set', 'deploy-user.shell=/usr/sbin/nologin']);
    const step = bad.host.steps.find((s) => s.id === 'deploy-user');
    expect(step?.status, JSON.stringify(step)).toBe('rolled-back');
    expect(step?.why).toMatch(/^rolled back: sudo -n as deploy over a fresh SSH login/);
    expect(step?.actions.map((a) => a.summary)).toEqual(['usermod --shell /usr/sbin/nologin -- deploy']);
    expect((await sh('getent passwd deploy')).trim(), 'the shell it had').toMatch(/:\/bin\/bash$/);
    const login = spawnSync('ssh', [...t.sshArgs('deploy'), 'sudo', '-n', 'true'], { encoding: 'utf8', timeout: 30_000 });
    expect(login.status, login.stderr).toBe(0);
    await converged(args, 'deploy');
  }, 600_000);

  it('removes a deploy user this run created when its shell fails the login proof: no account, home, keys or sudo rule left', async () => {
    const args = ['--playbook', deployUser, ...operatorKeyArgs(t), '--set', 'deploy-user.name=deploy2'];
    const bad = await zanuriProvision(t, [...args, '--set', 'deploy-user.shell=/usr/sbin/nologin']);
    const step = bad.host.steps.find((s) => s.id === 'deploy-user');
    expect(step?.status, JSON.stringify(step)).toBe('rolled-back');
    expect(step?.actions[0]?.summary).toBe('useradd --create-home --shell /usr/sbin/nologin --groups sudo -- deploy2');
    expect((await t.exec(['getent', 'passwd', 'deploy2'])).exitCode, 'no account').toBe(2);
    expect((await sh('ls -A /home; ls /etc/sudoers.d')).split('\n')).not.toContain('deploy2');
    expect(await sh('ls /etc/sudoers.d')).not.toContain('zanuri-deploy2');
    // The next run with a working shell creates it, and the one after finds nothing to do.
    const good = await zanuriProvision(t, args);
    expect(good.code, good.stdout).toBe(0);
    expect(good.host.steps.find((s) => s.id === 'deploy-user')?.status).toBe('changed');
    await converged(args);
  }, 600_000);
});
