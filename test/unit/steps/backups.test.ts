import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { directoryFact, fileFact, serviceFact, type FactRequest } from '../../../src/facts/state.js';
import { backups, confPath, keyPath, withArmorBlank } from '../../../src/steps/backups.js';
import { planOf, templates } from './facts-of.js';

const key = ['-----BEGIN PGP PUBLIC KEY BLOCK-----', '', 'mQINBGV0', '=abcd', '-----END PGP PUBLIC KEY BLOCK-----'];
const offsite = { host: '10.213.0.11', user: 'vault', port: 22, dir: '/srv/backups', knownHostsLine: '10.213.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOx' };

function entries(p: ReturnType<typeof backups.parseParams>): Array<[FactRequest<unknown>, string]> {
  const dirs = ['/etc/zanuri', '/etc/zanuri/backups', p.dir, '/etc/zanuri/backups/gnupg'];
  const files = [confPath, '/usr/local/sbin/zanuri-backup', '/etc/systemd/system/zanuri-backup.service', '/etc/systemd/system/zanuri-backup.timer', '/etc/zanuri/backups/recipient.asc', '/etc/zanuri/backups/known_hosts', `${keyPath}.pub`];
  return [
    ...dirs.map((d): [FactRequest<unknown>, string] => [directoryFact(d), 'absent']),
    ...files.map((f): [FactRequest<unknown>, string] => [fileFact(f), 'absent']),
    [serviceFact('zanuri-backup.timer'), 'not-found\ninactive'],
  ];
}

describe('backups', () => {
  it('defaults to seed 001: daily, 30 days', () => {
    const p = backups.parseParams({});
    expect(p).toMatchObject({ schedule: 'daily', retentionDays: 30, dir: '/var/backups/zanuri', gpgRecipientKey: null, offsite: null });
  });

  it('puts back the blank line of an armored key that --set @FILE drops', () => {
    expect(withArmorBlank(['-----BEGIN PGP PUBLIC KEY BLOCK-----', 'Comment: x', 'mQIN', '=ab', '-----END PGP PUBLIC KEY BLOCK-----']))
      .toEqual(['-----BEGIN PGP PUBLIC KEY BLOCK-----', 'Comment: x', '', 'mQIN', '=ab', '-----END PGP PUBLIC KEY BLOCK-----']);
    expect(backups.parseParams({ gpgRecipientKey: key }).gpgRecipientKey).toEqual(key);
  });

  it('refuses a key that is not an armored public key, a bad schedule, and hostile names', () => {
    expect(() => backups.parseParams({ gpgRecipientKey: ['hello'] })).toThrow(/ASCII-armored public key/);
    expect(() => backups.parseParams({ schedule: 'daily; reboot' })).toThrow(/schedule must be/);
    expect(() => backups.parseParams({ databases: ['app; drop'] })).toThrow(/databases\[0\] must be/);
    expect(() => backups.parseParams({ dir: '/var/../etc' })).toThrow(/dir must be/);
    expect(() => backups.parseParams({ offsite: { ...offsite, knownHostsLine: 'x' } })).toThrow(/offsite must be/);
  });

  it('plans a timer (not cron), a oneshot service, the script checked by sh -n, settings 0600, and an SSH key of its own for the off-site copy', () => {
    const p = backups.parseParams({ databases: ['app'], redis: true, gpgRecipientKey: key, offsite });
    const plan = planOf(backups, entries(p), p);
    const put = (path: string) => plan.actions.find((a) => a.kind === 'put' && a.path === path);
    const timer = put('/etc/systemd/system/zanuri-backup.timer');
    expect(String(timer?.kind === 'put' && timer.content)).toMatch(/OnCalendar=daily\n[\s\S]*Persistent=true/);
    const script = put('/usr/local/sbin/zanuri-backup');
    expect(script?.kind === 'put' && script.mode).toBe(0o755);
    expect(script?.kind === 'put' && script.validate?.argv).toEqual(['sh', '-n', '{}']);
    const conf = put(confPath);
    expect(conf?.kind === 'put' && conf.mode).toBe(0o600);
    expect(String(conf?.kind === 'put' && conf.content)).toContain("RETENTION_DAYS=30\nPG_DATABASES='app'\nREDIS=yes\n");
    expect(String(conf?.kind === 'put' && conf.content)).toContain("OFFSITE='vault@10.213.0.11'");
    expect(plan.actions.find((a) => a.kind === 'run' && a.cmd.argv[3] === 'zanuri-keygen')?.why).toMatch(/authorise its public half for vault@10\.213\.0\.11/);
    expect(plan.actions.some((a) => a.kind === 'put' && a.path.startsWith('/etc/cron'))).toBe(false);
    expect(plan.actions.some((a) => a.kind === 'service' && a.unit === 'zanuri-backup.timer' && a.op === 'enable-now')).toBe(true);
  });

  it('ships a script that dash parses, deletes by minutes strictly past the retention, and dumps with pg_dump | gzip', () => {
    const text = String(templates.render('backups/zanuri-backup.sh', {}).text);
    expect(spawnSync('dash', ['-n'], { input: text }).status).toBe(0);
    expect(text).toContain('-mmin "+$((RETENTION_DAYS * 1440))"');
    expect(text).toMatch(/pg_dump --no-password -- "\$d"; echo \$\? > "\$st"\) \| gzip -6/);
    expect(text).toContain('--recipient-file "$GPG_KEY" --encrypt');
  });
});
