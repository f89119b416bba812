import { CommandError, ConfigError } from '../core/errors.js';
import { fileFact } from '../facts/state.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { absolutePath, params, pattern, port, Type } from './schema.js';
import { defineStep } from './types.js';

/**
 * Backups as seed 001 asks ("Daily automated backups", "Retention: 30 days minimum", "pg_dump with
 * compression", off-site storage) and seed 002 lists (PostgreSQL, Redis persistence, configuration),
 * optionally encrypted to a GPG public key (seed 003: "Backup | GPG | RSA 4096"). A systemd timer
 * (Persistent: a run missed while the host was off happens at boot) starts a oneshot service that
 * runs one script: a gzip'd pg_dump per database, a tarball of Redis's RDB and AOF files, one of the
 * configuration paths; then removes artifacts older than the retention (strictly: by modification
 * time, in minutes) and copies the new ones to the off-site SSH host, if one is named, where the same
 * retention rule then prunes the copies (scp -p keeps each copy's modification time).
 *
 * The off-site copy logs in with a key the step generates on the host (the private half never
 * leaves it; the public half is in the plan's reason, for the operator to authorise on the off-site
 * host) and checks that host against the known_hosts line the operator gives: no trust on first use.
 */
const id = 'backups';
const scriptPath = '/usr/local/sbin/zanuri-backup';
const confDir = '/etc/zanuri/backups';
export const confPath = `${confDir}/backups.conf`;
export const keyPath = `${confDir}/id_ed25519`;
const recipientPath = `${confDir}/recipient.asc`;
const knownHostsPath = `${confDir}/known_hosts`;
const unitPath = '/etc/systemd/system/zanuri-backup.service';
const timerPath = '/etc/systemd/system/zanuri-backup.timer';

const pgName = Type.String({ pattern: '^(?:all|[a-z_][a-z0-9_]{0,62})$', what: 'a database name, or all' });

const schema = params({
  dir: absolutePath({ default: '/var/backups/zanuri', description: 'Where the artifacts are kept (0700 root); seed 001\'s layout uses /opt/aikovrr/backups.' }),
  schedule: Type.String({
    pattern: '^(?:hourly|daily|weekly|\\*-\\*-\\* [0-2]\\d:[0-5]\\d(?::[0-5]\\d)?)$', default: 'daily', what: 'hourly, daily, weekly or *-*-* HH:MM',
    description: 'OnCalendar of the timer: daily (seed 001: "Daily automated backups"), or a time of day like *-*-* 02:30.',
  }),
  retentionDays: Type.Integer({ minimum: 1, maximum: 3650, default: 30, description: 'Artifacts older than this many days (by modification time, to the minute) are removed after each run (seed 001: "Retention: 30 days minimum").' }),
  databases: Type.Array(pgName, { default: [], description: 'PostgreSQL databases to dump (pg_dump | gzip, plain SQL: restored with gunzip -c FILE | psql DB); "all" for every database that accepts connections; empty: none.' }),
  redis: Type.Boolean({ default: false, description: 'Back up Redis\'s persistence files (/var/lib/redis: dump.rdb and appendonlydir) as a tarball.' }),
  configPaths: Type.Array(absolutePath(), {
    default: ['/etc/zanuri', '/etc/postgresql', '/etc/redis', '/etc/nginx', '/etc/ssh'],
    description: 'Configuration to archive (paths missing on the host are skipped). /etc/zanuri holds generated passwords: encrypt, or keep the backup directory as private as the host.',
  }),
  gpgRecipientKey: Type.Union([Type.Null(), Type.Array(Type.String({ pattern: '^[\\x20-\\x7e]*$', what: 'a line of an ASCII-armored key' }))], {
    default: null, description: 'Encrypt every artifact to this GPG public key (seed 003: GPG, RSA 4096), ASCII-armored: --set backups.gpgRecipientKey=@backup-key.asc. Only the holder of the private key can restore; the plaintext never touches the disk.',
  }),
  offsite: Type.Union([Type.Null(), Type.Object({
    host: Type.String({ pattern: '^(?:(?:\\d{1,3}\\.){3}\\d{1,3}|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)$', what: 'a host name or IPv4 address' }),
    user: Type.String({ pattern: pattern.userName, what: 'a user name' }),
    port: port({ default: 22 }),
    dir: absolutePath(),
    knownHostsLine: Type.String({ pattern: '^[\\[\\]A-Za-z0-9.:,-]+ (?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) [A-Za-z0-9+/]+={0,3}(?: [\\x21-\\x7e]+)?$', what: 'a known_hosts line of the off-site host (host keytype key)' }),
  }, { additionalProperties: false })], {
    default: null, description: 'Copy each new artifact to this SSH host ({host, user, port, dir, knownHostsLine}) with scp -p (its modification time kept), as the key the step generates (its public half is shown in the plan: authorise it for that user, with a shell: the same retention then removes the artifacts in dir older than retentionDays there too, so give each host a dir of its own).',
  }),
});

type Params = {
  dir: string; schedule: string; retentionDays: number; databases: string[]; redis: boolean; configPaths: string[];
  gpgRecipientKey: string[] | null;
  offsite: { host: string; user: string; port: number; dir: string; knownHostsLine: string } | null;
};

const keyFact = () => fileFact(`${keyPath}.pub`);

/** When the last good run is overdue (the BackupOverdue alert): the schedule's period plus slack for the timer's random delay and the run itself. */
export const maxAgeOf = (schedule: string): number => (schedule === 'hourly' ? 2 * 3600 : schedule === 'weekly' ? 8 * 86400 : 26 * 3600);

/** --set KEY=@FILE drops blank lines; an armored key needs the one between its header lines and the body. */
export function withArmorBlank(lines: readonly string[]): string[] {
  const out: string[] = [];
  let inHeader = false;
  for (const line of lines) {
    if (/^-----BEGIN /.test(line)) {
      out.push(line);
      inHeader = true;
      continue;
    }
    if (inHeader) {
      if (/^[A-Za-z-]+: /.test(line)) {
        out.push(line);
        continue;
      }
      inHeader = false;
      if (line !== '') out.push('');
    }
    out.push(line);
  }
  return out;
}

export const backups = defineStep({
  id,
  title: 'Backups (PostgreSQL, Redis, configuration)',
  after: ['postgresql', 'redis'],
  params: schema,

  check(raw): Params {
    const key = raw.gpgRecipientKey;
    if (key && (!key.some((l) => l === '-----BEGIN PGP PUBLIC KEY BLOCK-----') || !key.some((l) => l === '-----END PGP PUBLIC KEY BLOCK-----'))) {
      throw new ConfigError(`${id}: gpgRecipientKey must be an ASCII-armored public key (BEGIN/END PGP PUBLIC KEY BLOCK)`, { hint: 'gpg --armor --export KEYID > backup-key.asc; --set backups.gpgRecipientKey=@backup-key.asc' });
    }
    const armored = key ? withArmorBlank(key) : null;
    if (raw.databases.includes('all') && raw.databases.length > 1) throw new ConfigError(`${id}: databases: "all" already means every database`);
    return { ...raw, gpgRecipientKey: armored } as Params;
  },

  packages: (p) => [...(p.databases.length ? ['postgresql-client'] : []), ...(p.gpgRecipientKey ? ['gnupg'] : []), ...(p.offsite ? ['openssh-client'] : []), 'gzip', 'tar'],

  facts: () => [keyFact()],

  resources(facts, p, { templates }) {
    const reload = { argv: ['systemctl', 'daemon-reload'] } as const;
    const conf = templates.render('backups/backups.conf', {
      dir: p.dir, retentionDays: p.retentionDays, databases: p.databases.join(' '), redis: p.redis ? 'yes' : 'no', configPaths: p.configPaths.join(' '),
      gpgKey: p.gpgRecipientKey ? recipientPath : '', offsite: p.offsite ? `${p.offsite.user}@${p.offsite.host}` : '', offsitePort: p.offsite?.port ?? 22, offsiteDir: p.offsite?.dir ?? '',
      maxAgeSeconds: maxAgeOf(p.schedule),
    });
    const unitFile = file(unitPath, templates.render('backups/zanuri-backup.service', { timeoutSeconds: 6 * 3600 }), { whyMissing: 'no service runs the backups yet' });
    const timerFile = file(timerPath, templates.render('backups/zanuri-backup.timer', { schedule: p.schedule, randomDelay: p.schedule === 'hourly' ? '5min' : '30min' }), { whyMissing: `nothing starts the backups ${p.schedule} yet` });
    const pub = facts.get(keyFact());
    const keyWhy = p.offsite && !pub.exists ? `the off-site copy needs an SSH key of its own (generated on the host; authorise its public half for ${p.offsite.user}@${p.offsite.host})` : null;
    return [
      directory('/etc/zanuri', { mode: 0o755 }),
      directory(confDir, { mode: 0o700 }),
      directory(p.dir, { mode: 0o700 }),
      ...(p.gpgRecipientKey ? [
        directory(`${confDir}/gnupg`, { mode: 0o700 }),
        file(recipientPath, templates.render('backups/recipient.asc', { lines: p.gpgRecipientKey }), { mode: 0o600, whyMissing: 'backups are not encrypted to the operator\'s key yet' }),
      ] : []),
      ...(p.offsite ? [
        file(knownHostsPath, templates.render('backups/known_hosts', { line: p.offsite.knownHostsLine }), { mode: 0o600, whyMissing: `the off-site host ${p.offsite.host}'s key is not known yet` }),
        command('backups-ssh-key', keyWhy, { argv: ['sh', '-c', 'umask 077 && ssh-keygen -q -t ed25519 -N "" -C "zanuri-backup@$(hostname)" -f "$1" </dev/null', 'zanuri-keygen', keyPath] }, { display: `ssh-keygen -t ed25519 -f ${keyPath} (on the host)` }),
      ] : []),
      file(confPath, conf, { mode: 0o600, whyMissing: 'the backup settings are not on the host yet' }),
      file(scriptPath, templates.render('backups/zanuri-backup.sh', {}), { mode: 0o755, validate: { argv: ['sh', '-n', '{}'] }, whyMissing: 'the backup script is not installed yet' }),
      unitFile,
      timerFile,
      command('backups-daemon-reload', unitFile.plan(facts).length || timerFile.plan(facts).length ? 'systemd reads the changed backup units' : null, reload),
      service('zanuri-backup.timer', { enabled: true, running: true }),
    ];
  },

  converged(p, facts) {
    const what = [p.databases.length ? `pg_dump of ${p.databases.join(', ')}` : '', p.redis ? 'Redis persistence' : '', p.configPaths.length ? 'configuration' : ''].filter(Boolean).join(', ');
    const pub = facts.get(keyFact());
    const offsite = p.offsite ? `; copied to ${p.offsite.user}@${p.offsite.host}:${p.offsite.dir} as ${pub.content?.trim() ?? 'the generated key'}` : '';
    return `${what || 'nothing'} backed up ${p.schedule} into ${p.dir}${p.gpgRecipientKey ? ', encrypted to the operator\'s GPG key' : ''}, kept ${p.retentionDays} days${offsite}`;
  },

  /** The script parses, the timer is scheduled, and the GPG key is a usable public key. */
  async verify(ctx, p) {
    const next = await ctx.run({ argv: ['systemctl', 'show', '-p', 'NextElapseUSecRealtime', '--value', 'zanuri-backup.timer'] });
    if (!next.ok || !next.stdout.trim()) throw new CommandError(next, 'systemctl show zanuri-backup.timer: no next run scheduled');
    if (p.gpgRecipientKey) {
      const test = await ctx.run({ argv: ['sh', '-c', 'echo zanuri | gpg --batch --no-tty --quiet --homedir "$1/gnupg" --trust-model always --recipient-file "$2" --encrypt --output /dev/null', 'zanuri-gpg', confDir, recipientPath] });
      if (!test.ok) throw new CommandError(test, `gpg cannot encrypt to ${recipientPath}`);
    }
  },
});
