import { describe, expect, it } from 'vitest';
import { directoryFact, heldPackagesFact, linkFact, packagesFact, serviceFact, sysctlFact, userFact, groupFact } from '../../../src/facts/state.js';
import { directory } from '../../../src/resources/directory.js';
import { link } from '../../../src/resources/link.js';
import { packages } from '../../../src/resources/packages.js';
import { service } from '../../../src/resources/service.js';
import { sysctl } from '../../../src/resources/sysctl.js';
import { group, user } from '../../../src/resources/user.js';
import { reboot } from '../../../src/resources/reboot.js';
import { command } from '../../../src/resources/command.js';
import { factsOf } from '../steps/facts-of.js';

describe('the directory resource', () => {
  it('creates a missing directory, fixes a wrong mode, and leaves a right one alone', () => {
    const r = directory('/srv/app', { mode: 0o750, owner: 'app' });
    expect(r.plan(factsOf([[directoryFact('/srv/app'), 'absent']]))).toEqual([{ kind: 'directory', path: '/srv/app', mode: 0o750, owner: 'app', group: 'app', before: null, why: '/srv/app/ does not exist' }]);
    expect(r.plan(factsOf([[directoryFact('/srv/app'), 'dir 755 app app']]))[0]).toMatchObject({ before: { mode: 0o755 }, why: '/srv/app/ is 0755 app:app, not 0750 app:app' });
    expect(r.plan(factsOf([[directoryFact('/srv/app'), 'dir 750 app app']]))).toEqual([]);
  });
});

describe('the link resource', () => {
  it('points a link at its target, removes one when the target is null, and remembers where it pointed', () => {
    const l = '/etc/nginx/sites-enabled/default';
    expect(link(l, null).plan(factsOf([[linkFact(l), 'link\n/etc/nginx/sites-available/default']]))).toEqual([
      { kind: 'link', path: l, target: null, before: '/etc/nginx/sites-available/default', why: `${l} links to /etc/nginx/sites-available/default` },
    ]);
    expect(link(l, '/x').plan(factsOf([[linkFact(l), 'link\n/x']]))).toEqual([]);
  });
});

describe('the packages resource', () => {
  const versions = (lines: string): string => lines;
  it('installs what is missing as one apt action, and is a checkpoint', () => {
    const r = packages(['nginx', 'curl']);
    expect(r.checkpoint).toBe(true);
    expect(r.plan(factsOf([[packagesFact(['curl', 'nginx']), versions('curl\tii \t7.88')]]))).toEqual([{ kind: 'packages', install: ['nginx'], why: 'nginx not installed' }]);
  });

  it('holds installed packages that are not held, with unhold as the undo', () => {
    const r = packages(['nvidia-driver'], { state: 'held' });
    const facts = factsOf([[packagesFact(['nvidia-driver']), 'nvidia-driver\tii \t535.216'], [heldPackagesFact(), 'linux-image-amd64']]);
    expect(r.plan(facts)).toEqual([{ kind: 'run', cmd: { argv: ['apt-mark', 'hold', '--', 'nvidia-driver'] }, undo: { argv: ['apt-mark', 'unhold', '--', 'nvidia-driver'] }, why: expect.stringMatching(/not held/) }]);
    expect(r.plan(factsOf([[packagesFact(['nvidia-driver']), 'nvidia-driver\tii \t535.216'], [heldPackagesFact(), 'nvidia-driver']]))).toEqual([]);
  });

  it('removes packages that must be absent, and only those installed', () => {
    const r = packages(['ntp', 'chrony'], { state: 'absent' });
    const [remove] = r.plan(factsOf([[packagesFact(['chrony', 'ntp']), 'ntp\tii \t1:4.2\nchrony\trc \t4.3']]));
    expect((remove as unknown as { cmd: { argv: string[] } }).cmd.argv.slice(-2)).toEqual(['--', 'ntp']);
  });
});

describe('the service resource', () => {
  const unit = 'nginx.service';
  const plan = (enabled: string, active: string, want = {}): unknown => service(unit, want).plan(factsOf([[serviceFact(unit), `${enabled}\n${active}`]]));
  it('enables and starts in one command, starts only, or does nothing, as the unit needs', () => {
    expect(plan('disabled', 'inactive')).toEqual([{ kind: 'service', unit, op: 'enable-now', why: `${unit} is disabled and inactive` }]);
    expect(plan('enabled', 'failed')).toEqual([{ kind: 'service', unit, op: 'start', why: `${unit} is enabled and failed` }]);
    expect(plan('static', 'active')).toEqual([]);
  });

  it('stops and disables a unit declared off', () => {
    expect(plan('enabled', 'active', { enabled: false, running: false })).toEqual([
      { kind: 'service', unit, op: 'disable', why: `${unit} is enabled and active: it must not start at boot` },
      { kind: 'service', unit, op: 'stop', why: `${unit} is enabled and active` },
    ]);
  });
});

describe('the sysctl resource', () => {
  it('sets the running value with the old one as its undo, and skips a parameter the kernel does not have', () => {
    expect(sysctl('net.ipv4.tcp_syncookies', 1).plan(factsOf([[sysctlFact('net.ipv4.tcp_syncookies'), 'value 0']]))).toEqual([{
      kind: 'run', cmd: { argv: ['sysctl', '-q', '-w', 'net.ipv4.tcp_syncookies=1'] }, undo: { argv: ['sysctl', '-q', '-w', 'net.ipv4.tcp_syncookies=0'] },
      why: 'net.ipv4.tcp_syncookies is 0, not 1',
    }]);
    expect(sysctl('net.ipv4.ip_local_port_range', '32768   60999').plan(factsOf([[sysctlFact('net.ipv4.ip_local_port_range'), 'value 32768\t60999']]))).toEqual([]);
    expect(sysctl('kernel.nonexistent', 1).plan(factsOf([[sysctlFact('kernel.nonexistent'), 'none']]))).toEqual([]);
  });
});

describe('users, groups, commands and reboots', () => {
  it('creates a user with its groups and shell, and adds a missing group without taking others away', () => {
    const r = user('app', { shell: '/usr/sbin/nologin', groups: ['www-data'], system: true });
    expect(r.plan(factsOf([[userFact('app'), '']]))).toEqual([{ kind: 'run', cmd: { argv: ['useradd', '--system', '--shell', '/usr/sbin/nologin', '--groups', 'www-data', '--', 'app'] }, undo: { argv: ['sh', '-c', 'userdel -- "$1" || [ $? -eq 6 ]', 'zanuri-userdel', 'app'] }, why: 'user app does not exist' }]);
    expect(r.plan(factsOf([[userFact('app'), 'app:x:998:998::/home/app:/usr/sbin/nologin\napp adm']]))).toEqual([
      expect.objectContaining({ kind: 'run', cmd: { argv: ['usermod', '--append', '--groups', 'www-data', '--', 'app'] }, why: 'app is not in www-data' }),
    ]);
    expect(group('app').plan(factsOf([[groupFact('app'), 'app:x:998:']]))).toEqual([]);
  });

  it('runs a command only with a reason, and reboots only with a reason (a checkpoint)', () => {
    expect(command('x', null, { argv: ['true'] }).plan(factsOf([]))).toEqual([]);
    expect(command('x', 'needed', { argv: ['true'] }, { display: 'shown' }).plan(factsOf([]))).toEqual([{ kind: 'run', cmd: { argv: ['true'] }, why: 'needed', display: 'shown' }]);
    expect(reboot('driver', 'the new driver loads at boot').plan(factsOf([]))).toEqual([{ kind: 'reboot', why: 'the new driver loads at boot' }]);
    expect(reboot('driver', null).checkpoint).toBe(true);
  });
});
