/**
 * node_exporter on two real systemd targets and Prometheus on one of them, behind ufw (needs
 * root): four cells on each, then Prometheus's HTTP API is asked from this host, 10.213.0.1 (an
 * internal source), for `up`, which must be 1 for every provisioned target's exporter; the same for
 * postgres_exporter beside PostgreSQL and redis_exporter beside Redis (Debian's packages, for real).
 */
import { readFileSync } from 'node:fs';
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
      // Only series scraped in the last 30 s: Debian's package starts Prometheus with its own default
      // configuration (job node on localhost:9100) before zanuri's is in place, and a restart writes no
      // staleness markers, so that first minute's series stays visible for the 5-minute lookback.
      up = await query(server.host, 'up{job="node"} == 1 and on (instance) (time() - timestamp(up{job="node"}) < 30)');
      if (up && up.map((s) => s.metric['instance']).sort().join() === wanted.join()) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(up?.map((s) => s.metric['instance']).sort(), JSON.stringify(up)).toEqual(wanted);
    // Prometheus scrapes itself too, and the metrics are the hosts' own (node_exporter's, not a stand-in).
    let self: Sample[] | null = null;
    for (const until = Date.now() + 60_000; Date.now() < until; await new Promise((r) => setTimeout(r, 1000))) {
      self = await query(server.host, 'up{job="prometheus"}');
      if (self?.length) break; // its first self-scrape may still be due
    }
    expect(self?.[0]?.value[1]).toBe('1');
    const uname = await query(server.host, 'node_uname_info and on (instance) (time() - timestamp(node_uname_info) < 30)');
    expect(uname?.length).toBe(2);

    // zanuri's rules are loaded and evaluated: the recording rule over the node job says all are up.
    const rules = await (await fetch(`http://${server.host}:9090/api/v1/rules`, { signal: AbortSignal.timeout(5000) })).json() as { data: { groups: Array<{ name: string; rules: Array<{ name: string; health: string }> }> } };
    const groups = Object.fromEntries(rules.data.groups.map((g) => [g.name, g.rules]));
    expect(groups['zanuri-alerts']?.map((r) => r.name)).toEqual(expect.arrayContaining(['TargetDown', 'HostDiskSpaceLow', 'PostgresDown', 'RedisDown']));
    expect(groups['zanuri-recording']?.every((r) => r.health !== 'err')).toBe(true);
    let ratio: Sample[] | null = null;
    for (const until = Date.now() + 60_000; Date.now() < until; await new Promise((r) => setTimeout(r, 1000))) {
      ratio = await query(server.host, 'job:up:ratio{job="node"}');
      if (ratio?.length) break;
    }
    expect(ratio?.[0]?.value[1]).toBe('1');
    // The rules' logic, by the server's own promtool on synthetic series (test/integration/fixtures).
    const unit = `rule_files: [/etc/prometheus/rules/zanuri.yml]\n${readFileSync(new URL('./fixtures/prometheus-rules.test.yml', import.meta.url), 'utf8')}`;
    const promtool = await server.exec(['sh', '-c', 'f=$(mktemp --suffix .yml) && cat > "$f" && promtool test rules "$f"; rc=$?; rm -f "$f"; exit $rc'], { stdin: unit });
    expect(promtool.exitCode, promtool.stdout + promtool.stderr).toBe(0);
    expect(promtool.stdout).toContain('SUCCESS');

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

  it('converges redis_exporter beside Redis in four cells as a least-privilege ACL user, and Prometheus reports redis_up == 1 from it', async () => {
    await fourCells(other, ['--playbook', 'test/integration/playbooks/monitoring-redis.yaml'], ['redis', 'redis-exporter']);
    // The package came from Debian's archive (through the apt proxy), not a stand-in.
    const policy = await other.exec(['apt-cache', 'policy', 'prometheus-redis-exporter']);
    expect(policy.stdout).toMatch(/Installed: 1\.\d+[^\n]*\n\s+Candidate: 1\.\d+/);
    expect(policy.stdout).toMatch(/debian bookworm\/main/);
    const jobs = [{ name: 'node', targets: [`${server.host}:9100`, `${other.host}:9100`] }, { name: 'redis', targets: [`${other.host}:9121`] }];
    const run = await zanuriProvision(server, ['--playbook', playbook, '--set', `prometheus.jobs=${JSON.stringify(jobs)}`]);
    expect(run.code, run.stderr).toBe(0);

    const deadline = Date.now() + 60_000;
    let redisUp: Sample[] | null = null;
    while (Date.now() < deadline) {
      redisUp = await query(server.host, 'redis_up == 1 and on (instance) up{job="redis"} == 1');
      if (redisUp?.length === 1) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(redisUp?.map((s) => s.metric['instance']), JSON.stringify(redisUp)).toEqual([`${other.host}:9121`]);
    // Real numbers from INFO: the maxmemory the redis step set (64mb), read by the exporter's user.
    expect((await query(server.host, 'redis_memory_max_bytes'))?.[0]?.value[1]).toBe(String(64 * 1024 * 1024));

    // The exporter's user reads INFO but no data and no settings (CONFIG GET would show masterauth).
    const asExporter = (...args: string[]) => other.exec(['sh', '-c', 'REDISCLI_AUTH=$(cat /etc/zanuri/redis/exporter.password) exec timeout 20 redis-cli --no-auth-warning --user exporter -h 127.0.0.1 "$@"', 'x', ...args]);
    expect((await asExporter('PING')).stdout.trim()).toBe('PONG');
    expect((await asExporter('GET', 'anything')).stdout).toMatch(/NOPERM/);
    expect((await asExporter('CONFIG', 'GET', 'maxmemory')).stdout).toMatch(/NOPERM/);
    expect((await asExporter('KEYS', '*')).stdout).toMatch(/NOPERM/);
    // The password is in no command line, no environment file and no unit: only in its 0600 file.
    const password = (await other.exec(['cat', '/etc/zanuri/redis/exporter.password'])).stdout.trim();
    expect(password).toMatch(/^[A-Za-z0-9]{16,}$/);
    expect((await other.exec(['stat', '-c', '%a %U', '/etc/zanuri/redis/exporter.password'])).stdout.trim()).toBe('600 root');
    const visible = await other.exec(['sh', '-c', 'ps -eo args; cat /etc/default/prometheus-redis-exporter; systemctl cat prometheus-redis-exporter.service; systemctl show prometheus-redis-exporter.service']);
    expect(visible.stdout).toContain('prometheus-redis-exporter');
    expect(visible.stdout).not.toContain(password);
    expect(run.stdout).not.toContain(password);
    expect((await other.exec(['ps', '-o', 'user=', '-C', 'prometheus-redi'])).stdout.trim()).toBe('prometheus');
    expect((await other.exec(['ufw', 'status'])).stdout).toMatch(/9121\/tcp\s+ALLOW\s+10\.213\.0\.0\/24/);
  }, 1_500_000);
});
