/**
 * backups on a real systemd target with PostgreSQL (needs root), and a second target as the off-site
 * SSH host. Four cells; then the timer's service runs (as the timer would start it), a dump is
 * RESTORED into a scratch database and its rows compared with the original, retention removes only
 * artifacts older than 30 days (planted with old modification times: the rule is "mtime older than
 * 30 x 1440 minutes", so moving the files back in time tests it exactly, where faking the clock of
 * systemd inside a container cannot be done), the artifact arrives off-site byte for byte, and with
 * a GPG key the artifact is ciphertext that only the private key (kept on this test host) restores.
 * Off-site, the same 30-day rule prunes the copies (planted there with the same ages), run by the
 * backup script over the same key.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { fourCells, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = 'test/integration/playbooks/backups.yaml';
const dir = '/var/backups/zanuri';

describe.skipIf(!can.ok && !process.env['CI'])('provision: backups restored from a real dump, retention and an off-site copy (needs root)', () => {
  let db: TestTarget;
  let offsite: TestTarget;
  let gnupg: string;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    gnupg = mkdtempSync(join(tmpdir(), 'zanuri-gpg-'));
    // The operator's key pair (seed 003: RSA 4096); only its public half goes to the host.
    execFileSync('gpg', ['--batch', '--homedir', gnupg, '--passphrase', '', '--quick-gen-key', 'zanuri backup test <backup@example.org>', 'rsa4096', 'encr', 'never'], { stdio: 'ignore', timeout: 300_000 });
    execFileSync('sh', ['-c', 'gpg --batch --homedir "$1" --armor --export > "$1/public.asc"', 'x', gnupg], { timeout: 60_000 });
    await ensureAptProxy();
    [db, offsite] = (await startTargets(2)) as [TestTarget, TestTarget];
    await offsite.addUser('vault', { sudo: 'none' });
    expect((await offsite.exec(['install', '-d', '-o', 'vault', '-g', 'vault', '-m', '700', '/srv/backups'])).exitCode).toBe(0);
  }, 900_000);

  afterAll(async () => {
    await stopAllTargets();
    if (gnupg) rmSync(gnupg, { recursive: true, force: true });
  });

  const offsiteArg = (): string[] => ['--set', `backups.offsite=${JSON.stringify({ host: offsite.host, user: 'vault', port: 22, dir: '/srv/backups', knownHostsLine: offsite.knownHostsLine.trim() })}`];
  const psql = (database: string, sql: string) => db.exec(['runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', sql]);
  const fingerprint = "select count(*) || ' ' || md5(string_agg(id || ':' || v, ',' order by id)) from t";
  const runBackup = async () => {
    const r = await db.exec(['timeout', '600', 'systemctl', 'start', 'zanuri-backup.service'], { timeoutMs: 630_000 });
    expect(r.exitCode, `${r.stderr}\n${(await db.exec(['journalctl', '-u', 'zanuri-backup', '--no-pager', '-n', '30'])).stdout}`).toBe(0);
  };
  const listing = async (): Promise<string[]> => (await db.exec(['ls', '-1', dir])).stdout.trim().split('\n').filter(Boolean).sort();

  it('converges in four cells; the daily timer runs pg_dump, the dump restores into a scratch database with the same rows, retention keeps 30 days, and the copy arrives off-site', async () => {
    await fourCells(db, ['--playbook', playbook, ...offsiteArg()], ['postgresql', 'backups']);

    // The timer: daily, persistent, enabled and waiting.
    expect((await db.exec(['systemctl', 'is-enabled', 'zanuri-backup.timer'])).stdout.trim()).toBe('enabled');
    expect((await db.exec(['systemctl', 'is-active', 'zanuri-backup.timer'])).stdout.trim()).toBe('active');
    const timer = (await db.exec(['systemctl', 'show', '-p', 'TimersCalendar', '-p', 'Persistent', 'zanuri-backup.timer'])).stdout;
    expect(timer).toMatch(/OnCalendar=\*-\*-\* 00:00:00/);
    expect(timer).toMatch(/Persistent=yes/);
    expect((await db.exec(['stat', '-c', '%a %U', dir])).stdout.trim()).toBe('700 root');

    // The operator authorises the key the step generated (its public half is in the report) on the off-site host.
    const pub = (await db.exec(['cat', '/etc/zanuri/backups/id_ed25519.pub'])).stdout.trim();
    expect(pub).toMatch(/^ssh-ed25519 /);
    const again = await zanuriProvision(db, ['--playbook', playbook, ...offsiteArg(), '--dry-run']);
    expect(again.host.steps.find((s) => s.id === 'backups')?.why).toContain(pub);
    expect((await offsite.exec(['sh', '-c', 'install -d -o vault -g vault -m 700 ~vault/.ssh && printf "%s\\n" "$1" >> ~vault/.ssh/authorized_keys && chown vault:vault ~vault/.ssh/authorized_keys', 'x', pub])).exitCode).toBe(0);

    // Data to back up.
    expect((await psql('app', "create table t (id int primary key, v text); insert into t select i, md5(i::text) from generate_series(1, 5000) i")).exitCode).toBe(0);
    const original = (await psql('app', fingerprint)).stdout.trim();
    expect(original).toMatch(/^5000 [0-9a-f]{32}$/);

    // Artifacts from before: 31 and 45 days old go; 29 days and 30 days less an hour stay; a file that is not an artifact stays whatever its age.
    const now = Math.floor(Date.now() / 1000);
    const planted: Array<[string, number]> = [
      ['db_backup_app_20250101_000000.sql.gz', now - 45 * 86400], ['config_20250102_000000.tar.gz', now - 31 * 86400],
      ['db_backup_app_20250103_000000.sql.gz', now - (30 * 86400 + 3600)], ['db_backup_app_20250104_000000.sql.gz', now - (30 * 86400 - 3600)],
      ['redis_20250105_000000.tar.gz', now - 29 * 86400], ['notes.txt', now - 90 * 86400],
    ];
    for (const [name, mtime] of planted) expect((await db.exec(['sh', '-c', 'echo old > "$1" && touch -d "@$2" "$1"', 'x', `${dir}/${name}`, String(mtime)])).exitCode).toBe(0);
    // The same ages off-site (owned by the off-site user): the off-site copies are pruned by the same rule.
    for (const [name, mtime] of planted) expect((await offsite.exec(['runuser', '-u', 'vault', '--', 'sh', '-c', 'echo old > "$1" && touch -d "@$2" "$1"', 'x', `/srv/backups/${name}`, String(mtime)])).exitCode).toBe(0);

    // Where node_exporter is installed (its textfile directory; created here by hand), the run leaves its outcome as metrics.
    expect((await db.exec(['install', '-d', '-m', '755', '/var/lib/prometheus/node-exporter'])).exitCode).toBe(0);
    await runBackup();
    const metrics = (await db.exec(['cat', '/var/lib/prometheus/node-exporter/zanuri-backup.prom'])).stdout;
    expect(metrics).toMatch(/^zanuri_backup_failed 0$/m);
    expect(metrics).toMatch(/^zanuri_backup_artifacts 2$/m);
    expect(metrics).toMatch(/^zanuri_backup_max_age_seconds 93600$/m);
    const lastOk = Number(/^zanuri_backup_last_success_timestamp_seconds (\d+)$/m.exec(metrics)?.[1]);
    expect(Math.abs(lastOk - Date.now() / 1000)).toBeLessThan(900);
    expect((await db.exec(['stat', '-c', '%a', '/var/lib/prometheus/node-exporter/zanuri-backup.prom'])).stdout.trim()).toBe('644');
    const files = await listing();
    expect(files).not.toContain('db_backup_app_20250101_000000.sql.gz');
    expect(files).not.toContain('config_20250102_000000.tar.gz');
    expect(files).not.toContain('db_backup_app_20250103_000000.sql.gz');
    expect(files).toContain('db_backup_app_20250104_000000.sql.gz');
    expect(files).toContain('redis_20250105_000000.tar.gz');
    expect(files).toContain('notes.txt');
    const dump = files.find((f) => /^db_backup_app_\d{8}_\d{6}\.sql\.gz$/.test(f) && !f.includes('2025010'));
    expect(dump, files.join(' ')).toBeDefined();
    expect(files.some((f) => /^config_\d{8}_\d{6}\.tar\.gz$/.test(f) && !f.includes('2025010'))).toBe(true);
    expect((await db.exec(['stat', '-c', '%a %U', `${dir}/${dump}`])).stdout.trim()).toBe('600 root');
    expect((await db.exec(['gzip', '-t', `${dir}/${dump}`])).exitCode, 'the dump is gzip-compressed').toBe(0);

    // Restore into a scratch database and compare the rows.
    expect((await db.exec(['runuser', '-u', 'postgres', '--', 'createdb', 'scratch'])).exitCode).toBe(0);
    const restore = await db.exec(['sh', '-c', 'gunzip -c "$1" | runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d scratch', 'x', `${dir}/${dump}`]);
    expect(restore.exitCode, restore.stderr).toBe(0);
    expect((await psql('scratch', fingerprint)).stdout.trim()).toBe(original);

    // The same bytes off-site.
    const here = (await db.exec(['sha256sum', `${dir}/${dump}`])).stdout.split(' ')[0];
    const there = await offsite.exec(['sha256sum', `/srv/backups/${dump}`]);
    expect(there.exitCode, there.stderr).toBe(0);
    expect(there.stdout.split(' ')[0]).toBe(here);
    // The copy keeps the artifact's modification time and mode, so it ages off-site as it does here.
    const stamp = async (t: TestTarget, path: string) => (await t.exec(['stat', '-c', '%Y %a', path])).stdout.trim();
    expect(await stamp(offsite, `/srv/backups/${dump}`)).toBe(await stamp(db, `${dir}/${dump}`));

    // Off-site retention: older than 30 days gone, younger kept, other files untouched.
    const away = (await offsite.exec(['ls', '-1', '/srv/backups'])).stdout.trim().split('\n').filter(Boolean).sort();
    expect(away).not.toContain('db_backup_app_20250101_000000.sql.gz');
    expect(away).not.toContain('config_20250102_000000.tar.gz');
    expect(away).not.toContain('db_backup_app_20250103_000000.sql.gz');
    expect(away).toContain('db_backup_app_20250104_000000.sql.gz');
    expect(away).toContain('redis_20250105_000000.tar.gz');
    expect(away).toContain('notes.txt');
    expect(away).toContain(dump);
    const journal = (await db.exec(['journalctl', '-u', 'zanuri-backup', '--no-pager', '-o', 'cat'])).stdout;
    expect(journal).toContain('/srv/backups/db_backup_app_20250101_000000.sql.gz');
  }, 2_400_000);

  it('encrypts every artifact to the operator\'s GPG key: the file is ciphertext, and the private key restores it', async () => {
    const key = join(gnupg, 'public.asc');
    const args = ['--playbook', playbook, ...offsiteArg(), '--set', `backups.gpgRecipientKey=@${key}`];
    const run = await zanuriProvision(db, args);
    expect(run.code, run.stderr).toBe(0);
    expect(run.host.steps.find((s) => s.id === 'backups')?.status).toBe('changed');
    const before = new Set(await listing());
    await new Promise((r) => setTimeout(r, 1100)); // a new timestamp in the names
    await runBackup();
    const dump = (await listing()).find((f) => !before.has(f) && f.startsWith('db_backup_app_'));
    expect(dump).toMatch(/\.sql\.gz\.gpg$/);
    const bytes = Buffer.from((await db.exec(['base64', '-w0', `${dir}/${dump}`])).stdout, 'base64');
    expect(bytes.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])), 'not plain gzip').toBe(false);
    expect(bytes.includes(Buffer.from('CREATE TABLE')), 'no plaintext SQL').toBe(false);
    const sql = execFileSync('sh', ['-c', 'gpg --batch --quiet --homedir "$1" --decrypt | gunzip -c', 'x', gnupg], { input: bytes, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
    expect((await db.exec(['runuser', '-u', 'postgres', '--', 'createdb', 'scratch2'])).exitCode).toBe(0);
    const restore = await db.exec(['runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', 'scratch2'], { stdin: sql.toString('utf8') });
    expect(restore.exitCode, restore.stderr).toBe(0);
    expect((await psql('scratch2', fingerprint)).stdout.trim()).toBe((await psql('app', fingerprint)).stdout.trim());
    expect(readFileSync(key, 'utf8')).toContain('BEGIN PGP PUBLIC KEY BLOCK');
    const second = await zanuriProvision(db, [...args, '--dry-run']);
    expect(second.host.steps.find((s) => s.id === 'backups')?.status).toBe('unchanged');
  }, 1_200_000);
});
