import { describe, expect, it } from 'vitest';
import { directivesOf, globMatch, mismatches, normalize, readOrder, tokenize } from '../../../src/steps/sshd-config.js';

const file = (path: string, content: string) => ({ path, content, mode: 0o644, owner: 'root', group: 'root' });
const dropIn = '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf';

describe('sshd configuration model', () => {
  it('reads a line as sshd does: Key value, Key=value, quoted words, trailing comments, aliases', () => {
    expect(tokenize('  PasswordAuthentication   yes  ')).toEqual({ keyword: 'passwordauthentication', args: ['yes'] });
    expect(tokenize('PermitRootLogin=no')).toEqual({ keyword: 'permitrootlogin', args: ['no'] });
    expect(tokenize('Banner "/etc/my banner" # greeting')).toEqual({ keyword: 'banner', args: ['/etc/my banner'] });
    expect(tokenize('ChallengeResponseAuthentication yes')).toEqual({ keyword: 'kbdinteractiveauthentication', args: ['yes'] });
    expect(tokenize('# PasswordAuthentication yes')).toBeNull();
    expect(tokenize('   ')).toBeNull();
  });

  it('matches Include globs as glob(7) does', () => {
    expect(globMatch('/etc/ssh/sshd_config.d/*.conf', dropIn)).toBe(true);
    expect(globMatch('/etc/ssh/sshd_config.d/*.conf', '/etc/ssh/sshd_config.d/sub/x.conf')).toBe(false);
    expect(globMatch('/etc/ssh/sshd_config.d/0?-*.conf', dropIn)).toBe(true);
    expect(globMatch('/etc/ssh/sshd_config.d/[!0]*.conf', dropIn)).toBe(false);
    expect(globMatch('/etc/ssh/sshd_config.d/*.cfg', dropIn)).toBe(false);
  });

  it('reads included files in byte order at the Include line, with the drop-in in its place even before it exists', () => {
    const order = readOrder([
      file('/etc/ssh/sshd_config', 'Port 22\nInclude sshd_config.d/*.conf\nX11Forwarding yes\nMatch User git\n  AllowTcpForwarding yes\n'),
      file('/etc/ssh/sshd_config.d/50-cloud-init.conf', 'PasswordAuthentication yes\n'),
      file('/etc/ssh/sshd_config.d/00-aaa.conf', 'LogLevel INFO\n'),
    ], dropIn);
    expect(order?.directives.map((d) => `${d.file.replace('/etc/ssh/', '')}:${d.line} ${d.keyword} ${d.match ?? '-'}`)).toEqual([
      'sshd_config:1 port -', 'sshd_config.d/00-aaa.conf:1 loglevel -', 'sshd_config.d/50-cloud-init.conf:1 passwordauthentication -',
      'sshd_config:3 x11forwarding -', 'sshd_config:5 allowtcpforwarding User git',
    ]);
    expect(order?.dropIn).toEqual({ index: 2, match: null, via: '/etc/ssh/sshd_config:2' });
  });

  it('has no order without an sshd_config (sshd not installed yet)', () => {
    expect(readOrder([], dropIn)).toBeNull();
  });

  it('compares config values with what sshd -T prints', () => {
    expect(normalize('permitrootlogin', 'without-password')).toBe(normalize('permitrootlogin', 'prohibit-password'));
    expect(normalize('logingracetime', '1m30s')).toBe('90');
    expect(normalize('loglevel', 'VERBOSE')).toBe('verbose');
    expect(directivesOf('# c\nPermitRootLogin no\nPermitRootLogin yes\nMatch all\nLogLevel INFO\n')).toEqual(new Map([['permitrootlogin', 'no']]));
  });

  it('reports every disagreement of the effective configuration, and nothing for a keyword sshd -T prints in its own way', () => {
    const wanted = directivesOf('PasswordAuthentication no\nLoginGraceTime 30\nAllowUsers deploy\n');
    const global = new Map([['passwordauthentication', 'no'], ['logingracetime', '120'], ['allowusers', 'deploy']]);
    expect(mismatches({ global, users: { root: new Map([['passwordauthentication', 'yes']]) }, spec: 'addr=192.0.2.1', error: null }, wanted))
      .toEqual(['logingracetime 120 (not 30) outside any Match block', 'passwordauthentication yes (not no) for root (addr=192.0.2.1)']);
  });
});
