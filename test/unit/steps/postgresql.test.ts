import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import { packagesFact } from '../../../src/facts/state.js';
import { dropInPath, hbaPath, parseConf, passwordPath, postgresFact, postgresql, renderDropIn, renderHba } from '../../../src/steps/postgresql.js';
import { b64, factsOf } from './facts-of.js';

const info = { loginUser: 'root', sshPort: 22, local: false };
/** profiles/aikovrr-minimum.yaml postgresql.settings, as profileParams() hands them over (YAML numbers stay numbers). */
const minimum = {
  max_connections: 100, shared_buffers: '256MB', effective_cache_size: '1GB', maintenance_work_mem: '64MB', checkpoint_completion_target: 0.9,
  wal_buffers: '16MB', default_statistics_target: 100, random_page_cost: 1.1, effective_io_concurrency: 200, work_mem: '2621kB', min_wal_size: '1GB', max_wal_size: '4GB',
};
const params = postgresql.parseParams({ settings: minimum });
const fact = postgresFact(params);
const hostile = ['a;reboot', '$(id)', '`id`', "x'y", 'a\nb', 'a b', '../x', ''];

/** The fact section as the script prints it, for a cluster in the given state. */
function output(o: { cluster?: string; dropIn?: string | null; hba?: string | null; rows?: string[]; pw?: string | null; login?: string; installed?: string; candidate?: string; enabled?: string }): string {
  const file = (content: string | null | undefined, mode: string): string => (content == null ? 'file absent' : `file ${mode} postgres postgres ${b64(content)}`);
  const lines = [`cluster ${o.cluster ?? ''}`, `installed ${o.installed ?? ''}`, `candidate ${o.candidate ?? '15'}`];
  if (o.cluster) {
    lines.push(file(o.dropIn, '644'), file(o.hba, '640'), 'includes-conf.d', `enabled ${o.enabled ?? 'enabled'}`);
    if (o.rows) lines.push(...o.rows, 'queried');
  }
  if (o.pw !== null && o.pw !== undefined) lines.push(`pwfile ${o.pw}`);
  if (o.login) lines.push(`login ${o.login}`);
  return lines.join('\n');
}
const converged = { cluster: '15 5432 online', installed: '15', dropIn: renderDropIn(params), hba: renderHba(params), rows: ['role true', 'db app', 'postmaster shared_buffers', 'postmaster max_connections', 'postmaster listen_addresses', 'postmaster wal_buffers'], pw: '600 root root 32', login: 'ok' };
const planFor = (o: Parameters<typeof output>[0], p = params, installed: string | null = '15.9-0+deb12u1') =>
  postgresql.plan(factsOf([[fact, output(o)], [packagesFact(['postgresql']), installed ? `postgresql\tii \t${installed}` : '']]), p, info);
const argvOf = (a: Action): string[] => (a.kind === 'run' ? [...a.cmd.argv] : []);

describe('postgresql parameters', () => {
  it('takes the AIKovrr settings as the profile gives them, with local-only defaults', () => {
    expect(params).toMatchObject({ listenAddresses: 'localhost', database: 'app', role: 'app', allowFrom: [] });
    expect(params.settings).toContainEqual(['shared_buffers', '256MB']);
    expect(params.settings).toContainEqual(['checkpoint_completion_target', '0.9']);
    expect(params.settings).toContainEqual(['max_connections', '100']);
  });

  it('refuses hostile setting names and values before any connection', () => {
    for (const bad of hostile) {
      expect(() => postgresql.parseParams({ settings: { [bad]: 1 } }), JSON.stringify(bad)).toThrow(/not a postgresql.conf parameter name/);
      expect(() => postgresql.parseParams({ settings: { work_mem: bad } }), JSON.stringify(bad)).toThrow(/work_mem must be/);
    }
    expect(() => postgresql.parseParams({ settings: { work_mem: "4MB'\ninclude '/tmp/x" } })).toThrow(/work_mem/);
    expect(() => postgresql.parseParams({ settings: { work_mem: Number.POSITIVE_INFINITY } })).toThrow(/work_mem/);
    expect(() => postgresql.parseParams({ settings: { work_mem: { a: 1 } } })).toThrow(/work_mem/);
    expect(() => postgresql.parseParams({ settings: ['shared_buffers=1GB'] })).toThrow(/mapping/);
  });

  it('keeps listen_addresses and Debian\'s file locations out of settings', () => {
    expect(() => postgresql.parseParams({ settings: { listen_addresses: 'localhost' } })).toThrow(/listenAddresses/);
    expect(() => postgresql.parseParams({ settings: { hba_file: 'x' } })).toThrow(/not set through settings/);
    expect(() => postgresql.parseParams({ settings: { include_dir: 'x' } })).toThrow(/not set through settings/);
  });

  it('refuses hostile or reserved role and database names', () => {
    for (const bad of [...hostile, 'App', '1app', 'a'.repeat(64)]) {
      expect(() => postgresql.parseParams({ role: bad }), JSON.stringify(bad)).toThrow(/role must be a PostgreSQL identifier/);
      expect(() => postgresql.parseParams({ database: bad }), JSON.stringify(bad)).toThrow(/database must be a PostgreSQL identifier/);
    }
    expect(() => postgresql.parseParams({ role: 'postgres' })).toThrow(/reserved or the superuser/);
    expect(() => postgresql.parseParams({ role: 'pg_monitor' })).toThrow(/reserved/);
    expect(() => postgresql.parseParams({ database: 'template1' })).toThrow(/reserved/);
  });

  it('needs localhost among the listen addresses, and a non-loopback one for allowFrom', () => {
    expect(postgresql.parseParams({ listenAddresses: 'localhost,10.0.0.5', allowFrom: ['10.0.0.0/24'] })).toMatchObject({ allowFrom: ['10.0.0.0/24'] });
    expect(() => postgresql.parseParams({ listenAddresses: '10.0.0.5' })).toThrow(/must include localhost/);
    expect(() => postgresql.parseParams({ listenAddresses: "localhost'; reboot" })).toThrow(/listenAddresses/);
    expect(() => postgresql.parseParams({ listenAddresses: 'localhost,example.com' })).toThrow(/not localhost, \* or an IP/);
    expect(() => postgresql.parseParams({ allowFrom: ['10.0.0.0/24'] })).toThrow(/listen beyond loopback/);
    expect(() => postgresql.parseParams({ listenAddresses: '*', allowFrom: ['10.0.0.0/24; trust'] })).toThrow(/allowFrom\[0\]/);
    expect(() => postgresql.parseParams({ password: 'x' })).toThrow(/unknown parameter "password"/);
  });
});

describe('postgresql files', () => {
  it('renders listen_addresses and the settings, numbers and sizes bare, words quoted', () => {
    const text = renderDropIn(postgresql.parseParams({ settings: { shared_buffers: '256MB', random_page_cost: 1.1, wal_level: 'replica', jit: false } }));
    expect(text).toMatch(/^listen_addresses = 'localhost'$/m);
    expect(text).toMatch(/^shared_buffers = 256MB$/m);
    expect(text).toMatch(/^random_page_cost = 1\.1$/m);
    expect(text).toMatch(/^wal_level = 'replica'$/m);
    expect(text).toMatch(/^jit = 'off'$/m);
    expect(parseConf(text).get('listen_addresses')).toBe('localhost');
    expect(parseConf(text).get('shared_buffers')).toBe('256MB');
  });

  it('writes a local-only pg_hba.conf: peer on sockets, scram-sha-256 on loopback, allowFrom limited to the app database and role', () => {
    const local = renderHba(params).split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/\s+/).join(' '));
    expect(local).toEqual([
      'local all postgres peer', 'local all all peer', 'host all all 127.0.0.1/32 scram-sha-256', 'host all all ::1/128 scram-sha-256',
      'local replication all peer', 'host replication all 127.0.0.1/32 scram-sha-256', 'host replication all ::1/128 scram-sha-256',
    ]);
    const open = renderHba(postgresql.parseParams({ listenAddresses: '*', allowFrom: ['10.213.0.0/24', '10.0.0.7'] }));
    expect(open).toMatch(/^host +app +app +10\.213\.0\.0\/24 +scram-sha-256$/m);
    expect(open).toMatch(/^host +app +app +10\.0\.0\.7\/32 +scram-sha-256$/m);
    expect(open).not.toMatch(/trust|md5|password\b/);
  });
});

describe('postgresql plan', () => {
  it('plans everything from what is known on a fresh host, naming the version apt would install and saying so', () => {
    const plan = planFor({ candidate: '15' }, params, null);
    expect(plan.actions.map((a) => a.kind)).toEqual(['put', 'put', 'run', 'run', 'run', 'run']);
    const [conf, hba] = plan.actions;
    expect(conf).toMatchObject({ path: '/etc/postgresql/15/main/conf.d/50-zanuri.conf', owner: 'postgres', mode: 0o644, notify: [{ unit: 'postgresql@15-main.service', op: 'restart' }] });
    expect(hba).toMatchObject({ path: '/etc/postgresql/15/main/pg_hba.conf', mode: 0o640, notify: [{ unit: 'postgresql@15-main.service', op: 'reload' }] });
    for (const action of plan.actions.filter((a) => a.kind === 'put' || (a.kind === 'run' && a.display?.startsWith('psql')))) expect(action.why).toMatch(/not installed yet/);
    expect(plan.actions.map((a) => (a.kind === 'run' ? a.display : ''))).toEqual([
      '', '', 'psql: CREATE ROLE app LOGIN (if missing)', 'psql: CREATE DATABASE app OWNER app (if missing)',
      `generate a random password for app on the host into ${passwordPath('app')} (0600 root)`, `psql: ALTER ROLE app PASSWORD (read from ${passwordPath('app')} on the host)`,
    ]);
  });

  it('says the path is unknown when apt names no version either', () => {
    const plan = planFor({ candidate: '' }, params, null);
    expect(plan.actions[0]).toMatchObject({ path: '/etc/postgresql/<version>/main/conf.d/50-zanuri.conf' });
    expect(plan.actions[0]?.why).toMatch(/known only after the install/);
  });

  it('never carries a password: the generator and the setter take only the role, the port and the file path', () => {
    const plan = planFor({ candidate: '15' }, params, null);
    const runs = plan.actions.filter((a) => a.kind === 'run');
    const generate = runs.find((a) => argvOf(a)[3] === 'zanuri-password');
    const set = runs.find((a) => argvOf(a)[3] === 'zanuri-set-password');
    expect(argvOf(generate as Action).slice(3)).toEqual(['zanuri-password', passwordPath('app')]);
    expect(argvOf(set as Action).slice(3)).toEqual(['zanuri-set-password', '5432', 'app', passwordPath('app')]);
    for (const action of runs) expect(action.kind === 'run' && action.cmd.stdin === undefined ? '' : String(action.kind === 'run' ? action.cmd.stdin : '')).not.toMatch(/PASSWORD '/);
    // Statement logging is off for the session that carries the password, and psql errors are terse.
    expect(argvOf(set as Action)[2]).toMatch(/SET log_statement = 'none'/);
    expect(argvOf(set as Action)[2]).toMatch(/VERBOSITY=terse/);
  });

  it('does what the installed host still lacks: settings, access list, role, database and password', () => {
    const plan = planFor({ cluster: '15 5432 online', installed: '15', hba: '# debian default\n', rows: ['postmaster shared_buffers', 'postmaster listen_addresses'] });
    expect(plan.actions.map((a) => a.why)).toEqual([
      expect.stringMatching(/settings are not applied \(13 parameters\); listen_addresses, shared_buffers need a restart$/),
      expect.stringMatching(/pg_hba.conf is not the local-only access list$/),
      'role app does not exist',
      'database app does not exist',
      'app has no password file yet; it is generated on the host and never leaves it',
      'app gets the new password',
    ]);
    expect(plan.actions[0]).toMatchObject({ validateInPlace: { argv: expect.arrayContaining(['/usr/lib/postgresql/15/bin/postgres', '/etc/postgresql/15/main/postgresql.conf']) } });
    expect(plan.actions[1]).toMatchObject({ before: '# debian default\n', validateInPlace: { argv: expect.arrayContaining(['zanuri-hba', '5432']) } });
  });

  it('leaves a converged host alone and says why', () => {
    expect(planFor(converged)).toEqual({ actions: [], noop: `PostgreSQL 15/main runs the profile's 12 settings, is reachable only locally, and app logs in to app with the password in ${passwordPath('app')}` });
  });

  it('reloads for a drifted setting that needs no restart, and restarts for one that does', () => {
    const reload = planFor({ ...converged, dropIn: renderDropIn(params).replace('work_mem = 2621kB', 'work_mem = 64MB') });
    expect(reload.actions).toEqual([expect.objectContaining({ kind: 'put', path: dropInPath('15'), notify: [{ unit: 'postgresql@15-main.service', op: 'reload' }] })]);
    expect(reload.actions[0]?.why).toBe('work_mem differ from the profile; a reload applies them');
    const restart = planFor({ ...converged, dropIn: renderDropIn(params).replace('shared_buffers = 256MB', 'shared_buffers = 128MB') });
    expect(restart.actions[0]).toMatchObject({ notify: [{ unit: 'postgresql@15-main.service', op: 'restart' }] });
    expect(restart.actions[0]?.why).toMatch(/shared_buffers need a restart/);
  });

  it('restarts once when a managed setting waits for a restart, e.g. after an interrupted run', () => {
    const plan = planFor({ ...converged, rows: [...converged.rows, 'pending shared_buffers'] });
    expect(plan.actions).toEqual([{ kind: 'service', unit: 'postgresql@15-main.service', op: 'restart', why: 'shared_buffers changed on disk but wait for a restart' }]);
    expect(planFor({ ...converged, rows: [...converged.rows, 'pending ssl'] }).actions, 'not for settings zanuri does not manage').toEqual([]);
  });

  it('starts a stopped cluster first, and re-sets the password when the role cannot log in with the file', () => {
    const stopped = planFor({ ...converged, cluster: '15 5432 down', rows: undefined, login: undefined });
    expect(stopped.actions[0]).toMatchObject({ kind: 'service', unit: 'postgresql@15-main.service', op: 'start' });
    const drifted = planFor({ ...converged, login: 'failed' });
    expect(drifted.actions).toHaveLength(1);
    expect(drifted.actions[0]).toMatchObject({ kind: 'run', why: `app cannot log in over 127.0.0.1 with the password in ${passwordPath('app')}` });
  });

  it('keeps an existing password file and repairs its owner and mode', () => {
    const plan = planFor({ ...converged, pw: '644 root root 32' });
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'run', display: `chown root:root ${passwordPath('app')} && chmod 600 ${passwordPath('app')}` })]);
  });

  it('fixes a database owned by someone else and a cluster that would not start at boot', () => {
    const plan = planFor({ ...converged, enabled: 'disabled', rows: ['role true', 'db postgres'] });
    expect(plan.actions.map((a) => a.why)).toEqual([
      'postgresql.service is disabled: the cluster would not start at boot',
      'database app is owned by postgres, not app',
    ]);
  });

  it('creates the main cluster when the package is there but the cluster was dropped', () => {
    const plan = planFor({ installed: '15' });
    expect(plan.actions[0]).toMatchObject({ kind: 'run', cmd: { argv: ['pg_createcluster', '--start', '15', 'main'] } });
  });

  it('opens allowFrom networks in pg_hba.conf', () => {
    const p = postgresql.parseParams({ settings: minimum, listenAddresses: 'localhost,10.213.0.10', allowFrom: ['10.213.0.0/24'] });
    const plan = planFor({ ...converged, dropIn: renderDropIn(p) }, p);
    expect(plan.actions).toEqual([expect.objectContaining({ path: hbaPath('15'), why: expect.stringMatching(/\(\+10\.213\.0\.0\/24\)/) })]);
  });
});

describe('postgresql fact', () => {
  it('reads the cluster, files, server answers and password metadata', () => {
    const state = fact.parse(output(converged));
    expect(state).toMatchObject({
      cluster: { version: '15', port: 5432, online: true }, installedVersion: '15', candidateVersion: '15', includesConfD: true, enabled: 'enabled',
      queried: true, role: { canLogin: true }, databaseOwner: 'app', passwordFile: { mode: '600', owner: 'root', group: 'root', size: 32 }, login: 'ok',
    });
    expect(state.dropIn.content).toBe(renderDropIn(params));
  });

  it('reads a host without PostgreSQL as unknown, not as an error', () => {
    expect(fact.parse('cluster \ninstalled \ncandidate ')).toMatchObject({ cluster: null, installedVersion: null, candidateVersion: null, queried: false, passwordFile: null, login: 'unknown' });
    expect(fact.parse('')).toMatchObject({ cluster: null, dropIn: { exists: false } });
  });

  it('never reads the password file itself, only stat', () => {
    expect(fact.script).toContain("stat -c '%a %U %G %s' \"$pw\"");
    expect(fact.script).not.toMatch(/cat "\$pw"|base64 < "\$pw"/);
  });
});

describe('postgresql host scripts', () => {
  const fresh = planFor({ candidate: '15' }, params, null);
  const scriptOf = (name: string): string => {
    const action = fresh.actions.find((a) => a.kind === 'run' && a.cmd.argv[3] === name);
    return String(action?.kind === 'run' ? action.cmd.argv[2] : '');
  };
  const shells = ['dash', 'bash'].filter((sh) => spawnSync(sh, ['-c', 'true']).status === 0);

  it('parse in dash and bash: the fact, every run action and every in-place validation', () => {
    const scripts = [fact.script, ...fresh.actions.flatMap((a) => [
      ...(a.kind === 'run' && a.cmd.argv[0] === 'sh' ? [a.cmd.argv[2] as string] : []),
      ...(a.kind === 'put' && a.validateInPlace?.argv[0] === 'sh' ? [a.validateInPlace.argv[2] as string] : []),
    ])];
    expect(scripts.length).toBeGreaterThan(5);
    for (const sh of shells) for (const script of scripts) expect(spawnSync(sh, ['-n', '-c', script]).status, `${sh}: ${script.slice(0, 60)}`).toBe(0);
  });

  it('hand the password to psql on stdin only: never in its argv', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-pg-'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // A stand-in for runuser that records what psql would get.
    writeFileSync(join(bin, 'runuser'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/argv\ncat > ${dir}/stdin\n`, { mode: 0o755 });
    const file = join(dir, 'app.password');
    writeFileSync(file, 'Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA');
    for (const sh of shells) {
      const result = spawnSync(sh, ['-c', scriptOf('zanuri-set-password'), 'zanuri-set-password', '5432', 'app', file], { env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` }, encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      const argv = readFileSync(join(dir, 'argv'), 'utf8');
      const stdin = readFileSync(join(dir, 'stdin'), 'utf8');
      expect(argv).not.toContain('Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA');
      expect(argv.split('\n')).toEqual(expect.arrayContaining(['postgres', 'psql', 'role=app', 'VERBOSITY=terse', 'ON_ERROR_STOP=1']));
      expect(stdin.split('\n')).toEqual([
        "\\set pw 'Zq8xK2mP4vR7tY1wN3bC6dF9gH5jL0sA'", "SET log_statement = 'none';", "SET log_min_error_statement = 'panic';",
        'SET log_min_duration_statement = -1;', "SET password_encryption = 'scram-sha-256';", 'ALTER ROLE :"role" PASSWORD :\'pw\';', '',
      ]);
    }
    // A file that could break out of the \set quoting is refused before psql runs.
    writeFileSync(file, "abcdefghijklmnop'; DROP ROLE app; --");
    const refused = spawnSync('sh', ['-c', scriptOf('zanuri-set-password'), 'zanuri-set-password', '5432', 'app', file], { env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` }, encoding: 'utf8' });
    expect(refused.status).toBe(3);
    expect(refused.stderr).toMatch(/must hold one line of 16 to 200 letters and digits/);
    expect(refused.stderr).not.toContain('DROP');
  });

  it.skipIf(process.getuid?.() !== 0)('generate a 32-character password into a new 0600 root file, and keep an existing one', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'zanuri-pg-')), 'sub', 'app.password');
    for (const sh of shells) {
      rmSync(file, { force: true });
      expect(spawnSync(sh, ['-c', scriptOf('zanuri-password'), 'zanuri-password', file]).status).toBe(0);
      const first = readFileSync(file, 'utf8');
      expect(first).toMatch(/^[A-Za-z0-9]{32}$/);
      expect((statSync(file).mode & 0o777).toString(8)).toBe('600');
      expect(spawnSync(sh, ['-c', scriptOf('zanuri-password'), 'zanuri-password', file]).status).toBe(0);
      expect(readFileSync(file, 'utf8'), 'a rerun keeps the password').toBe(first);
    }
  });
});
