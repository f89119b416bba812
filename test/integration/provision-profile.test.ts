/**
 * A whole profile on a real systemd target (needs root): aikovrr-minimum's playbook (web-app) with
 * the profile's own numbers (ports for the firewall, postgresql.conf settings), in four cells, then
 * every service checked from outside and inside. TLS is left out here (--skip certbot): it needs the
 * ACME test server and is covered by provision-web.test.ts.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { startLlmServer } from '../helpers/llm/server.js';
import { fourCells, operatorKeyArgs, zanuriProvision } from '../helpers/provision.js';
import { run } from '../helpers/proc.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();

function health(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port: 80, path: '/health', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!can.ok && !process.env['CI'])('provision a whole profile (aikovrr-minimum) on a real target (needs root)', () => {
  let target: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [target] = (await startTargets(1)) as [TestTarget];
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  it('converges in four cells, and every service works afterwards', async () => {
    const args = ['--profile', 'aikovrr-minimum', '--skip', 'certbot', ...operatorKeyArgs(target), '--set', 'ufw.internalFrom=["10.213.0.0/24"]'];
    const steps = ['packages', 'deploy-user', 'ssh-harden', 'ufw', 'fail2ban', 'nginx', 'postgresql', 'backups', 'unattended-upgrades', 'timesync', 'baseline'];
    // The first apply turns root logins off (PermitRootLogin no once the deploy user is proven): later runs log in as deploy.
    const [dry1, apply1, , apply2] = await fourCells(target, args, steps, { after: 'deploy' });
    expect(dry1.host.roundTrips).toBe(1);
    expect(apply2.host.roundTrips, 'a converged host costs one round trip').toBe(1);
    // The profile's numbers reached the steps: its public ports and its postgresql.conf settings.
    const ufwWhy = apply1.host.steps.find((s) => s.id === 'ufw')?.actions.map((a) => a.summary).join('\n') ?? '';
    expect(ufwWhy).toMatch(/to any port 80\b/);
    expect(ufwWhy).toMatch(/to any port 443\b/);
    const show = await target.exec(['runuser', '-u', 'postgres', '--', 'psql', '-XAtc', 'show shared_buffers']);
    expect(show.stdout.trim()).toBe('256MB');
    const maxConnections = await target.exec(['runuser', '-u', 'postgres', '--', 'psql', '-XAtc', 'show max_connections']);
    expect(maxConnections.stdout.trim()).toBe('100');

    expect(await health(target.host)).toEqual({ status: 200, body: 'ok\n' });
    const ufw = await target.exec(['ufw', 'status', 'verbose']);
    expect(ufw.stdout).toMatch(/Status: active/);
    expect(ufw.stdout).toMatch(/Default: deny \(incoming\)/);
    expect(ufw.stdout, "SSH stays public (no adminFrom): rate-limited by default").toMatch(/^22\/tcp\s+LIMIT IN\s+Anywhere/m);
    expect(ufw.stdout).toMatch(/^5432\/tcp\s+ALLOW IN\s+10\.213\.0\.0\/24/m);
    expect((await target.exec(['fail2ban-client', 'status', 'sshd'])).stdout).toMatch(/Currently banned/);
    // A fresh key login as the deploy user works; passwords are refused.
    const login = await run(['ssh', ...target.sshArgs('deploy'), 'sudo', '-n', 'true'], { timeoutMs: 30_000 });
    expect(login.exitCode, login.stderr).toBe(0);
    const password = await run(['ssh', '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'PubkeyAuthentication=no', '-o', `UserKnownHostsFile=${target.knownHostsPath}`,
      '-o', 'StrictHostKeyChecking=yes', `deploy@${target.host}`, 'true'], { timeoutMs: 30_000 });
    expect(password.stderr).toMatch(/Permission denied \(publickey\)/);
  }, 900_000);

  it('ends by benchmarking the model server when the profile has benchmark targets (evolution-tier1)', async () => {
    // The model server listens on the test bridge; zanuri reaches it only through the target's SSH connection.
    const server = await startLlmServer({ listen: '10.213.0.1' });
    try {
      // Its playbook is gpu-server: the GPU steps skip themselves on this GPU-less target (checked below); the Docker
      // steps are proven in provision-docker's targets, which allow what dockerd needs.
      const result = await zanuriProvision(target, ['--profile', 'evolution-tier1', '--skip', 'docker,nvidia-container-toolkit,docker-ufw', ...operatorKeyArgs(target), '--bench-endpoint', server.url], 'deploy');
      expect(result.code, result.stderr).toBe(0);
      const steps = (JSON.parse(result.stdout) as { hosts: Array<{ steps: Array<{ id: string; status: string; why: string }> }> }).hosts[0]?.steps ?? [];
      for (const id of ['nvidia-driver', 'fabric-manager', 'cuda-toolkit', 'dcgm-exporter']) {
        expect(steps.find((s) => s.id === id)?.why, id).toMatch(/NVIDIA GPU|no GPU|skipped/i);
      }
      const report = JSON.parse(result.stdout) as { bench: Record<string, { model: string; singleStream: { metrics: { completed: number } }; targets: Array<{ id: string; status: string }> }> };
      const bench = report.bench[`deploy@${target.host}`];
      expect(bench?.model).toBe(server.model);
      expect(bench?.singleStream.metrics.completed).toBeGreaterThan(0);
      // Tier 1's 7B target cannot be judged against a tiny model of unknown size: said so, not passed.
      expect(bench?.targets.find((t) => t.id === 'decode-7b')?.status).toBe('not-measured');
    } finally {
      await server.close();
    }
  }, 300_000);
});
