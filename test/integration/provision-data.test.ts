/**
 * postgresql and unattended-upgrades on a real systemd target (needs root): four cells each, then
 * the database is checked from inside (settings in effect, loopback only, the app role logs in,
 * the generated password never left the host) and apt is asked what it will do.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfiles } from '../../src/profiles/load.js';
import { profileParams } from '../../src/profiles/playbook.js';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { fourCells, zanuriProvision, type ProvisionRun } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = 'test/integration/playbooks/data.yaml';

describe.skipIf(!can.ok && !process.env['CI'])('provision: PostgreSQL and unattended upgrades on a real target (needs root)', () => {
  let target: TestTarget;
  let settings: Record<string, string | number>;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    const [profile] = await loadProfiles({ names: ['aikovrr-minimum'] });
    settings = (profileParams(profile as NonNullable<typeof profile>)['postgresql']?.['settings'] ?? {}) as Record<string, string | number>;
    await ensureAptProxy();
    [target] = (await startTargets(1)) as [TestTarget];
  }, 600_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  const psql = (sql: string) => target.exec(['runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-c', sql]);

  it('converges postgresql with the AIKovrr minimum settings in four cells; local only, and the app role logs in', async () => {
    expect(Object.keys(settings)).toContain('shared_buffers');
    const args = ['--playbook', playbook, '--only', 'postgresql', '--set', `postgresql.settings=${JSON.stringify(settings)}`];
    const runs = await fourCells(target, args, ['postgresql']);
    const [dry1, apply1, dry2, apply2] = runs;
    for (const run of [dry1, dry2, apply2]) expect(run.host.roundTrips, 'a dry run, or a run on a converged host, reads the facts in one round trip').toBe(1);
    const dryStep = dry1.host.steps.find((s) => s.id === 'postgresql');
    expect(dryStep?.actions.find((a) => a.kind === 'put')?.diff).toContain('+shared_buffers = 256MB');
    expect(dryStep?.why).toMatch(/not installed yet/);
    expect(apply1.host.steps.find((s) => s.id === 'postgresql')?.why).toMatch(/shared_buffers.*need a restart/);

    // Every setting of the profile is in effect, as written.
    const shown = await psql("select name || '=' || setting || coalesce(unit, '') from pg_settings order by name");
    expect(shown.exitCode, shown.stderr).toBe(0);
    for (const [name, value] of Object.entries(settings)) {
      const show = await psql(`SHOW ${name}`);
      expect(show.stdout.trim(), `SHOW ${name}`).toBe(String(value));
    }
    const listen = await psql('SHOW listen_addresses');
    expect(listen.stdout.trim()).toBe('localhost');

    // 5432 listens on loopback only.
    const ss = await target.exec(['ss', '-Hltn', 'sport = :5432']);
    const addresses = ss.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)[3]);
    expect(addresses.length, ss.stdout).toBeGreaterThan(0);
    for (const address of addresses) expect(address, ss.stdout).toMatch(/^(?:127\.0\.0\.1|\[::1\]):5432$/);

    // The password file is root's alone, and its content appears in no output of any run.
    const stat = await target.exec(['stat', '-c', '%a %U %G', '/etc/zanuri/postgresql/app.password']);
    expect(stat.stdout.trim()).toBe('600 root root');
    const password = (await target.exec(['cat', '/etc/zanuri/postgresql/app.password'])).stdout.trim();
    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    for (const run of runs as ProvisionRun[]) {
      expect(run.stdout.includes(password), 'password in the JSON report').toBe(false);
      expect(run.stderr.includes(password), 'password on stderr').toBe(false);
    }
    const logs = await target.exec(['sh', '-c', 'cat /var/log/postgresql/*.log; journalctl --no-pager -q 2>/dev/null']);
    expect(logs.stdout.includes(password), 'password in the server log or the journal').toBe(false);

    // The app role logs in over TCP with that password (PGPASSFILE, never argv).
    const login = await target.exec(['sh', '-c', 't=$(mktemp); sed "s/^/*:*:*:*:/" /etc/zanuri/postgresql/app.password > "$t"; PGPASSFILE=$t psql -XAtqw -h 127.0.0.1 -U app -d app -c "select current_user, current_database()"; r=$?; rm -f "$t"; exit $r']);
    expect(login.exitCode, login.stderr).toBe(0);
    expect(login.stdout.trim()).toBe('app|app');
    // A wrong password is refused: scram-sha-256, not trust.
    const wrong = await target.exec(['sh', '-c', 't=$(mktemp); echo "*:*:*:*:wrong" > "$t"; PGPASSFILE=$t psql -XAtqw -h 127.0.0.1 -U app -d app -c "select 1"; r=$?; rm -f "$t"; exit $r']);
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toMatch(/password authentication failed/);
  }, 1_200_000);

  it('keeps the generated password and restores a drifted setting with a reload, not a restart', async () => {
    const args = ['--playbook', playbook, '--only', 'postgresql', '--set', `postgresql.settings=${JSON.stringify({ ...settings, work_mem: '4MB' })}`];
    const before = (await target.exec(['cat', '/etc/zanuri/postgresql/app.password'])).stdout;
    const pid = (await psql('select pg_postmaster_start_time()')).stdout;
    const run = await zanuriProvision(target, args);
    expect(run.code, run.stderr).toBe(0);
    const step = run.host.steps.find((s) => s.id === 'postgresql');
    expect(step?.status).toBe('changed');
    expect(step?.why).toMatch(/work_mem differ.*a reload applies them/);
    expect((await psql('SHOW work_mem')).stdout.trim()).toBe('4MB');
    expect((await psql('select pg_postmaster_start_time()')).stdout, 'no restart for work_mem').toBe(pid);
    expect((await target.exec(['cat', '/etc/zanuri/postgresql/app.password'])).stdout, 'the password is kept').toBe(before);
  }, 600_000);

  it('converges unattended-upgrades in four cells; apt reads the blacklist and the periodic settings, and a dry run of unattended-upgrade works', async () => {
    const args = ['--playbook', playbook, '--only', 'unattended-upgrades'];
    await fourCells(target, args, ['unattended-upgrades']);

    const dump = await target.exec(['apt-config', 'dump']);
    expect(dump.exitCode, dump.stderr).toBe(0);
    expect(dump.stdout).toMatch(/^APT::Periodic::Update-Package-Lists "1";$/m);
    expect(dump.stdout).toMatch(/^APT::Periodic::Unattended-Upgrade "1";$/m);
    for (const entry of ['nvidia-.*', 'libnvidia-.*', 'cuda-.*', 'libcuda.*']) {
      expect(dump.stdout).toContain(`Unattended-Upgrade::Package-Blacklist:: "${entry}";`);
    }
    const origins = dump.stdout.split('\n').filter((l) => l.startsWith('Unattended-Upgrade::Origins-Pattern::'));
    expect(origins.length).toBeGreaterThan(0);
    expect(origins.every((l) => /security/.test(l)), origins.join('\n')).toBe(true);
    for (const timer of ['apt-daily.timer', 'apt-daily-upgrade.timer']) {
      expect((await target.exec(['systemctl', 'is-enabled', timer])).stdout.trim()).toBe('enabled');
    }

    const uu = await target.exec(['timeout', '300', 'unattended-upgrade', '--dry-run', '--debug'], { timeoutMs: 330_000 });
    const out = uu.stdout + uu.stderr;
    expect(uu.exitCode, out).toBe(0);
    expect(out).toMatch(/Allowed origins are: .*origin=Debian,codename=bookworm-security,label=Debian-Security/);
    expect(out).toMatch(/Initial blacklist: .*nvidia-\.\*/);
    expect(out, 'Debian host: only the Debian security origin').not.toMatch(/origin=Ubuntu/);
    expect(out).not.toMatch(/Traceback|^E: /m);
  }, 1_200_000);
});
