/**
 * grafana and loki on a real systemd target (needs root), from a STAND-IN of Grafana's apt
 * repository (test/helpers/grafana-standin.ts): Grafana's repository cannot be reached from here,
 * so the repository, its keyring and Signed-By, the packages' install, zanuri's files (drop-in,
 * credentials, provisioning, dashboard, Loki's configuration) and the services run for real, but
 * the programs behind the units are small stand-ins, not Grafana or Loki: the real binaries were
 * not run. Four cells; a repository signed by another key than the one given is refused by apt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { startGrafanaStandin, type GrafanaStandin } from '../helpers/grafana-standin.js';
import { BRIDGE_IP } from '../helpers/network.js';
import { fourCells, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = 'test/integration/playbooks/monitoring-grafana.yaml';

describe.skipIf(!can.ok && !process.env['CI'])('provision: grafana and loki from a stand-in of Grafana\'s apt repository (needs root; stand-in packages, not the real binaries)', () => {
  let target: TestTarget;
  let repo: GrafanaStandin;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    repo = await startGrafanaStandin();
    [target] = (await startTargets(1)) as [TestTarget];
    // The stand-in repository is on the bridge, not behind the apt proxy (which fetches only from Debian's mirror).
    const direct = await target.exec(['sh', '-c', `echo 'Acquire::http::Proxy::${BRIDGE_IP} "DIRECT";' > /etc/apt/apt.conf.d/02standin-direct`]);
    expect(direct.exitCode).toBe(0);
  }, 600_000);

  afterAll(async () => {
    await stopAllTargets();
    await repo?.close();
  });

  const repoArgs = (key: string | null): string[] => ['grafana', 'loki'].flatMap((step) => [
    '--set', `${step}.repositoryUrl=${repo.url}`,
    ...(key === null ? [] : ['--set', `${step}.repositoryKey=${JSON.stringify(key)}`]),
  ]);

  it('refuses the stand-in repository with Grafana\'s real key (shipped): apt will not trust a repository signed by another key', async () => {
    const run = await zanuriProvision(target, ['--playbook', playbook, ...repoArgs(null)]);
    expect(run.code).not.toBe(0);
    const failed = run.host.steps.find((s) => s.status === 'failed' || s.status === 'rolled-back');
    expect(failed?.id, run.stdout.slice(0, 2000)).toBe('loki');
    // apt fetched the stand-in's InRelease and found its signature made by a key the keyring does not hold.
    expect(JSON.stringify(failed)).toMatch(/NO_PUBKEY|couldn't be verified/);
    expect(JSON.stringify(failed)).not.toMatch(/ 403 /);
    expect(repo.requests).toContain('/dists/stable/InRelease');
    expect((await target.exec(['sh', '-c', 'dpkg -s grafana loki 2>&1 | grep -c "^Status: install ok installed"'])).stdout.trim()).toBe('0');
  }, 900_000);

  it('converges loki and grafana from the stand-in repository in four cells (stand-in packages): datasources and dashboard provisioned, admin password a credential, ports internal', async () => {
    const [, apply] = await fourCells(target, ['--playbook', playbook, ...repoArgs(repo.keyArmored)], ['loki', 'grafana']);
    expect(repo.requests).toContain('/dists/stable/InRelease');
    expect(repo.requests.some((r) => r.startsWith('/pool/main/grafana_'))).toBe(true);

    // deb822, its own keyring (the stand-in's key), no global trust.
    const sources = (await target.exec(['cat', '/etc/apt/sources.list.d/zanuri-grafana.sources'])).stdout;
    expect(sources).toContain(`URIs: ${repo.url}`);
    expect(sources).toMatch(/^Suites: stable$/m);
    expect(sources).toMatch(/^Components: main$/m);
    expect(sources).toMatch(/^Signed-By: \/etc\/apt\/keyrings\/zanuri-grafana\.asc$/m);
    expect((await target.exec(['cat', '/etc/apt/keyrings/zanuri-grafana.asc'])).stdout.trim()).toBe(repo.keyArmored.trim());
    expect((await target.exec(['sh', '-c', 'ls /etc/apt/trusted.gpg.d/ 2>/dev/null | grep -ci grafana || true'])).stdout.trim()).toBe('0');
    expect((await target.exec(['dpkg-query', '-W', '-f', '${Version}', 'grafana'])).stdout).toBe('11.0.0-standin');

    // Grafana (stand-in) answers as its own user and reads, through zanuri's modes, the credential and the provisioning.
    const health = await target.exec(['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/3000 && printf "GET /api/health HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3'], { timeoutMs: 30_000 });
    const body = JSON.parse(health.stdout.slice(health.stdout.indexOf('{'))) as { standin: boolean; credential: boolean; datasources: string[]; dashboards: number };
    expect(body).toEqual({ standin: true, database: 'ok', credential: true, datasources: ['Prometheus', 'Loki'], dashboards: 1 });
    expect((await target.exec(['ps', '-o', 'user=', '-C', 'grafana'])).stdout.trim()).toBe('grafana');

    // The password: 32 characters in a 0600 root file, passed as a systemd credential; in no unit, environment or report.
    const password = (await target.exec(['cat', '/etc/zanuri/grafana/admin.password'])).stdout;
    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect((await target.exec(['stat', '-c', '%a %U', '/etc/zanuri/grafana/admin.password'])).stdout.trim()).toBe('600 root');
    const env = (await target.exec(['systemctl', 'show', '-p', 'Environment', 'grafana-server.service'])).stdout;
    expect(env).toContain('GF_AUTH_ANONYMOUS_ENABLED=false');
    expect(env).toContain('GF_USERS_ALLOW_SIGN_UP=false');
    expect(env).toContain('GF_SERVER_HTTP_PORT=3000');
    expect(env).toMatch(/GF_SECURITY_ADMIN_PASSWORD__FILE=\/run\/credentials\/grafana-server\.service\/admin-password/);
    const exposed = await target.exec(['sh', '-c', 'systemctl cat grafana-server.service; systemctl show grafana-server.service; ps -eo args; cat /etc/grafana/provisioning/datasources/*.yaml']);
    expect(exposed.stdout).not.toContain(password);
    expect(apply.stdout).not.toContain(password);
    const datasources = (await target.exec(['stat', '-c', '%a %U:%G', '/etc/grafana/provisioning/datasources/zanuri.yaml', '/etc/grafana/dashboards/zanuri/fleet.json'])).stdout.trim().split('\n');
    expect(datasources).toEqual(['640 root:grafana', '640 root:grafana']);

    // Loki (stand-in): its configuration (0640 root:loki) checked by the package's own `loki -verify-config` before it went in place, ready on 3100.
    expect((await target.exec(['stat', '-c', '%a %U:%G', '/etc/loki/config.yml', '/var/lib/loki'])).stdout.trim().split('\n')).toEqual(['640 root:loki', '750 loki:loki']);
    expect((await target.exec(['grep', '-c', 'retention_period: 2160h', '/etc/loki/config.yml'])).stdout.trim()).toBe('1');
    const ready = await target.exec(['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/3100 && printf "GET /ready HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3']);
    expect(ready.stdout).toMatch(/200 OK[\s\S]*ready/);

    // Both ports are internal: from the bridge only.
    const ufw = (await target.exec(['ufw', 'status'])).stdout;
    expect(ufw).toMatch(/3000\/tcp\s+ALLOW\s+10\.213\.0\.0\/24/);
    expect(ufw).toMatch(/3100\/tcp\s+ALLOW\s+10\.213\.0\.0\/24/);
    expect(ufw).not.toMatch(/3000\/tcp\s+ALLOW\s+Anywhere/);
  }, 1_500_000);
});
