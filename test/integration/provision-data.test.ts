/**
 * postgresql and unattended-upgrades on a real systemd target (needs root): four cells each, then
 * the database is checked from inside and from this host, 10.213.0.1 (TLS only from allowFrom, the
 * app role logs in with its env file, the generated password never left the host nor reached the
 * server in plaintext, pg_hba.conf lines of others survive, no unasked restart of a database in
 * use) and apt is asked what it will do.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfiles } from '../../src/profiles/load.js';
import { profileParams } from '../../src/profiles/playbook.js';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { fourCells, zanuriProvision, type ProvisionRun } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = 'test/integration/playbooks/data.yaml';
const testHost = '10.213.0.1';

/** psql on this machine (the test host), the password in the environment, never in argv. */
function psqlHere(conn: Record<string, string>, password: string, sql: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '10', PGHOST: conn['host'] ?? '', PGPORT: conn['port'] ?? '5432', PGUSER: conn['user'] ?? '', PGDATABASE: conn['dbname'] ?? '', PGSSLMODE: conn['sslmode'] ?? 'prefer' };
  return new Promise((resolve) => {
    execFile('psql', ['-XAtqw', '-c', sql], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

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
  /** The profile's settings and seed 001's timezone (quoted, as the seed writes it), every statement logged, pg_stat_statements loaded (a list value). */
  const withSeed = (): Record<string, string | number> => ({ ...settings, timezone: "'UTC'", log_statement: 'all', shared_preload_libraries: 'pg_stat_statements' });
  const pgArgs = (extra: Record<string, unknown> = {}, allowFrom = [`${testHost}/32`]): string[] => [
    '--playbook', playbook, '--only', 'postgresql', '--set', `postgresql.settings=${JSON.stringify({ ...withSeed(), ...extra })}`,
    '--set', `postgresql.listenAddresses=localhost,${target.host}`, '--set', `postgresql.allowFrom=${JSON.stringify(allowFrom)}`, '--set', 'postgresql.appUser=aikovrr',
  ];
  const passwordOf = async (): Promise<string> => (await target.exec(['cat', '/etc/zanuri/postgresql/app.password'])).stdout.trim();

  it('converges postgresql with the AIKovrr minimum settings in four cells; TLS only from allowFrom, UTF8 en_US.UTF-8, and the app logs in with its env file', async () => {
    expect(Object.keys(settings)).toContain('shared_buffers');
    await target.addUser('aikovrr', { sudo: 'none' });
    const args = pgArgs();
    const runs = await fourCells(target, args, ['postgresql']);
    const [dry1, apply1, dry2, apply2] = runs;
    for (const run of [dry1, dry2, apply2]) expect(run.host.roundTrips, 'a dry run, or a run on a converged host, reads the facts in one round trip').toBe(1);
    const dryStep = dry1.host.steps.find((s) => s.id === 'postgresql');
    expect(dryStep?.actions.find((a) => a.kind === 'put')?.diff).toContain("+timezone = 'UTC'");
    expect(dryStep?.actions.find((a) => a.kind === 'put')?.diff).toContain('+shared_buffers = 256MB');
    expect(dryStep?.why).toMatch(/not installed yet/);
    expect(apply1.host.steps.find((s) => s.id === 'postgresql')?.why).toMatch(/shared_buffers.*need a restart/);

    // Every setting of the profile is in effect, as written.
    const shown = await psql("select name || '=' || setting || coalesce(unit, '') from pg_settings order by name");
    expect(shown.exitCode, shown.stderr).toBe(0);
    for (const [name, value] of Object.entries({ ...settings, timezone: 'UTC', log_statement: 'all', shared_preload_libraries: 'pg_stat_statements', ssl: 'on' })) {
      const show = await psql(`SHOW ${name}`);
      expect(show.stdout.trim(), `SHOW ${name}`).toBe(String(value));
    }
    const listen = await psql('SHOW listen_addresses');
    expect(listen.stdout.trim()).toBe(`localhost,${target.host}`);

    // The database is UTF8 with seed 001's collation, made from template0.
    const locale = await psql("select pg_encoding_to_char(encoding), datcollate, datctype from pg_database where datname = 'app'");
    expect(locale.stdout.trim()).toBe('UTF8|en_US.UTF-8|en_US.UTF-8');

    // The env file is the app user's alone, and its DATABASE_URL logs in: from this host over TLS, and as the app user on the host.
    expect((await target.exec(['stat', '-c', '%a %U', '/etc/zanuri/postgresql/app.env'])).stdout.trim()).toBe('600 aikovrr');
    const envText = (await target.exec(['cat', '/etc/zanuri/postgresql/app.env'])).stdout;
    const databaseUrl = new URL(/^DATABASE_URL=(.*)$/m.exec(envText)?.[1] ?? 'invalid:');
    expect(databaseUrl.protocol).toBe('postgresql:');
    const remote = { host: target.host, port: databaseUrl.port, user: databaseUrl.username, dbname: databaseUrl.pathname.slice(1) };
    const overTls = await psqlHere({ ...remote, sslmode: 'require' }, databaseUrl.password, 'select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()');
    expect(overTls.code, overTls.stderr).toBe(0);
    expect(overTls.stdout.trim()).toBe('app|t');
    const plain = await psqlHere({ ...remote, sslmode: 'disable' }, databaseUrl.password, 'select 1');
    expect(plain.code, 'a connection without TLS from allowFrom is refused').not.toBe(0);
    expect(plain.stderr).toMatch(/rejects connection|no encryption/);
    const asApp = await target.exec(['runuser', '-u', 'aikovrr', '--', 'sh', '-c', '. /etc/zanuri/postgresql/app.env && PGPASSWORD=$DATABASE_PASSWORD psql -XAtqw -h "$DATABASE_HOST" -p "$DATABASE_PORT" -U "$DATABASE_USER" -d "$DATABASE_NAME" -c "select current_user"']);
    expect(asApp.exitCode, asApp.stderr).toBe(0);
    expect(asApp.stdout.trim()).toBe('app');
    expect((await target.exec(['runuser', '-u', 'nobody', '--', 'cat', '/etc/zanuri/postgresql/app.env'])).exitCode, 'another user cannot read it').not.toBe(0);

    // 5432 listens on loopback and the target's own address only.
    const ss = await target.exec(['ss', '-Hltn', 'sport = :5432']);
    const addresses = ss.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)[3]);
    expect(addresses.length, ss.stdout).toBeGreaterThan(0);
    for (const address of addresses) expect(address, ss.stdout).toMatch(new RegExp(`^(?:127\\.0\\.0\\.1|\\[::1\\]|${target.host.replaceAll('.', '\\.')}):5432$`));

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

    // The server holds a SCRAM verifier.
    expect((await psql("select rolpassword like 'SCRAM-SHA-256$4096:%' from pg_authid where rolname = 'app'")).stdout.trim()).toBe('t');

    // The app role logs in over TCP with that password (PGPASSFILE, never argv).
    const login = await target.exec(['sh', '-c', 't=$(mktemp); sed "s/^/*:*:*:*:/" /etc/zanuri/postgresql/app.password > "$t"; PGPASSFILE=$t psql -XAtqw -h 127.0.0.1 -U app -d app -c "select current_user, current_database()"; r=$?; rm -f "$t"; exit $r']);
    expect(login.exitCode, login.stderr).toBe(0);
    expect(login.stdout.trim()).toBe('app|app');
    // A wrong password is refused: scram-sha-256, not trust.
    const wrong = await target.exec(['sh', '-c', 't=$(mktemp); echo "*:*:*:*:wrong" > "$t"; PGPASSFILE=$t psql -XAtqw -h 127.0.0.1 -U app -d app -c "select 1"; r=$?; rm -f "$t"; exit $r']);
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toMatch(/password authentication failed/);
  }, 1_200_000);

  it('sends the server only a SCRAM verifier: with every statement logged and pg_stat_statements on, the plaintext appears nowhere', async () => {
    const password = await passwordOf();
    // The role's password is lost on the server: the step sets it again from the file, now with log_statement = all in effect.
    expect((await psql('ALTER ROLE app PASSWORD NULL')).exitCode).toBe(0);
    expect((await psql('SHOW log_statement')).stdout.trim()).toBe('all');
    const run = await zanuriProvision(target, pgArgs());
    expect(run.code, run.stderr).toBe(0);
    expect(run.host.steps.find((s) => s.id === 'postgresql')?.why).toMatch(/app cannot log in over 127\.0\.0\.1/);
    const logs = await target.exec(['sh', '-c', 'cat /var/log/postgresql/*.log']);
    expect(logs.stdout, 'the server logs statements').toContain('ALTER ROLE app PASSWORD NULL');
    expect(logs.stdout.includes(password), 'password in the server log').toBe(false);
    expect((await psql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')).exitCode).toBe(0);
    const tracked = await psql('select query from pg_stat_statements');
    expect(tracked.exitCode, tracked.stderr).toBe(0);
    expect(tracked.stdout, 'pg_stat_statements tracks utility statements').toContain('ALTER ROLE app PASSWORD NULL');
    expect(tracked.stdout.includes(password), 'password in pg_stat_statements').toBe(false);
    expect(run.stdout.includes(password) || run.stderr.includes(password), 'password in the report').toBe(false);
    const login = await psqlHere({ host: target.host, user: 'app', dbname: 'app', sslmode: 'require' }, password, 'select 1');
    expect(login.code, login.stderr).toBe(0);
  }, 600_000);

  it('keeps the replication and monitoring lines others add to pg_hba.conf outside its block', async () => {
    const hba = '/etc/postgresql/15/main/pg_hba.conf';
    const extra = 'host    replication     replicator      10.213.0.0/24           scram-sha-256';
    expect((await target.exec(['sh', '-c', `printf '%s\\n' "$1" >> ${hba}`, 'x', extra])).exitCode).toBe(0);
    const args = pgArgs({}, [`${testHost}/32`, '10.213.0.2/32']);
    const run = await zanuriProvision(target, args);
    expect(run.code, run.stderr).toBe(0);
    expect(run.host.steps.find((s) => s.id === 'postgresql')?.why).toMatch(/the lines outside it are kept/);
    const text = (await target.exec(['cat', hba])).stdout;
    expect(text.split('\n')[0]).toBe('# BEGIN zanuri postgresql');
    expect(text).toContain(`${extra}\n`);
    expect(text).toMatch(/^hostssl +app +app +10\.213\.0\.2\/32 +scram-sha-256$/m);
    expect(text.match(/^# BEGIN zanuri postgresql$/gm)).toHaveLength(1);
    const rules = await psql("select count(*) from pg_hba_file_rules where 'replicator' = any(user_name) and error is null");
    expect(rules.stdout.trim(), 'the server loaded the replication line').toBe('1');
    const again = await zanuriProvision(target, [...args, '--dry-run']);
    expect(again.host.steps.find((s) => s.id === 'postgresql')?.status).toBe('unchanged');
  }, 600_000);

  it('does not restart a database in use for a restart-needing change unless restart=allow, and warns in the plan', async () => {
    const started = (await psql('select pg_postmaster_start_time()')).stdout;
    const dry = await zanuriProvision(target, [...pgArgs({ shared_buffers: '128MB' }), '--dry-run']);
    expect(dry.host.steps.find((s) => s.id === 'postgresql')?.why).toMatch(/WARNING: shared_buffers needs a restart, and the running cluster holds 1 database; restart is refuse/);
    const refused = await zanuriProvision(target, pgArgs({ shared_buffers: '128MB' }));
    expect(refused.code, refused.stderr).toBe(0);
    expect((await psql('select pg_postmaster_start_time()')).stdout, 'no restart').toBe(started);
    expect((await psql("select setting || ' ' || pending_restart from pg_settings where name = 'shared_buffers'")).stdout.trim()).toBe('32768 true');
    const later = await zanuriProvision(target, [...pgArgs({ shared_buffers: '128MB' }), '--dry-run']);
    const step = later.host.steps.find((s) => s.id === 'postgresql');
    expect(step?.status).toBe('unchanged');
    expect(step?.why).toMatch(/WARNING: shared_buffers needs a restart/);
    const allowed = await zanuriProvision(target, [...pgArgs({ shared_buffers: '128MB' }), '--set', 'postgresql.restart=allow']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect((await psql('SHOW shared_buffers')).stdout.trim()).toBe('128MB');
    expect((await psql('select pg_postmaster_start_time()')).stdout, 'restarted').not.toBe(started);
  }, 900_000);

  it('keeps the generated password and restores a drifted setting with a reload, not a restart', async () => {
    const args = pgArgs({ shared_buffers: '128MB', work_mem: '4MB' });
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
