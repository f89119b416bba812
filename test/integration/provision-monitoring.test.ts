/**
 * node_exporter on two real systemd targets and Prometheus on one of them, behind ufw (needs
 * root): four cells on each, then Prometheus's HTTP API is asked from this host, 10.213.0.1 (an
 * internal source), for `up`, which must be 1 for every provisioned target's exporter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { fourCells, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = 'test/integration/playbooks/monitoring.yaml';

interface Sample { metric: Record<string, string>; value: [number, string] }

async function query(host: string, promql: string): Promise<Sample[] | null> {
  try {
    const res = await fetch(`http://${host}:9090/api/v1/query?query=${encodeURIComponent(promql)}`, { signal: AbortSignal.timeout(5000) });
    const body = await res.json() as { status: string; data?: { result: Sample[] } };
    return body.status === 'success' ? body.data?.result ?? [] : null;
  } catch {
    return null;
  }
}

describe.skipIf(!can.ok && !process.env['CI'])('provision: node_exporter and Prometheus on two real targets (needs root)', () => {
  let server: TestTarget;
  let other: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [server, other] = (await startTargets(2)) as [TestTarget, TestTarget];
  }, 600_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  it('converges node_exporter on both and Prometheus on one in four cells, and Prometheus reports up == 1 for every target', async () => {
    const jobs = [{ name: 'node', targets: [`${server.host}:9100`, `${other.host}:9100`] }];
    await Promise.all([
      fourCells(server, ['--playbook', playbook, '--set', `prometheus.jobs=${JSON.stringify(jobs)}`], ['node-exporter', 'prometheus']),
      fourCells(other, ['--playbook', playbook, '--skip', 'prometheus'], ['node-exporter']),
    ]);

    const wanted = [`${server.host}:9100`, `${other.host}:9100`].sort();
    const deadline = Date.now() + 60_000;
    let up: Sample[] | null = null;
    while (Date.now() < deadline) {
      up = await query(server.host, 'up{job="node"} == 1');
      if (up && up.map((s) => s.metric['instance']).sort().join() === wanted.join()) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(up?.map((s) => s.metric['instance']).sort(), JSON.stringify(up)).toEqual(wanted);
    // Prometheus scrapes itself too, and the metrics are the hosts' own (node_exporter's, not a stand-in).
    expect((await query(server.host, 'up{job="prometheus"}'))?.[0]?.value[1]).toBe('1');
    const uname = await query(server.host, 'node_uname_info');
    expect(uname?.length).toBe(2);

    // The other host has no Prometheus; its exporter answers on the internal network.
    expect(await query(other.host, 'up')).toBeNull();
    const status = (await server.exec(['ufw', 'status'])).stdout;
    expect(status).toMatch(/9090\/tcp\s+ALLOW\s+10\.213\.0\.0\/24/);
    expect(status).toMatch(/9100\/tcp\s+ALLOW\s+10\.213\.0\.0\/24/);
  }, 1_500_000);

  it('converges postgres_exporter beside PostgreSQL in four cells, and Prometheus reports pg_up == 1 from it', async () => {
    await fourCells(other, ['--playbook', 'test/integration/playbooks/monitoring-pg.yaml'], ['postgresql', 'postgres-exporter']);
    const jobs = [{ name: 'node', targets: [`${server.host}:9100`, `${other.host}:9100`] }, { name: 'postgres', targets: [`${other.host}:9187`] }];
    const run = await zanuriProvision(server, ['--playbook', playbook, '--set', `prometheus.jobs=${JSON.stringify(jobs)}`]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.host.steps.find((s) => s.id === 'prometheus')?.status).toBe('changed');

    const deadline = Date.now() + 60_000;
    let pgUp: Sample[] | null = null;
    while (Date.now() < deadline) {
      pgUp = await query(server.host, 'pg_up == 1 and on (instance) up{job="postgres"} == 1');
      if (pgUp?.length === 1) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(pgUp?.map((s) => s.metric['instance']), JSON.stringify(pgUp)).toEqual([`${other.host}:9187`]);
    // The exporter's role has no password: it logs in only over the socket, as the prometheus system user.
    const role = await other.exec(['runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-c', "select rolpassword is null, pg_has_role('prometheus', 'pg_monitor', 'member') from pg_authid where rolname = 'prometheus'"]);
    expect(role.stdout.trim()).toBe('t|t');
  }, 1_500_000);
});
