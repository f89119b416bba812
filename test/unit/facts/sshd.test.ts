import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSshConnection, parseSshdFiles, sshdEffectiveFact, sshSessionFact } from '../../../src/facts/sshd.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/sshd/${name}`, import.meta.url), 'utf8');

describe('sshd facts', () => {
  it('find the SSH connection above a run that sudo started (captured on Debian 12)', () => {
    expect(sshSessionFact().parse(fixture('debian12-session-sudo.txt'))).toEqual({
      read: true, session: { client: '10.213.0.1', clientPort: 47324, server: '10.213.0.15', serverPort: 22 },
    });
  });

  it('tell a console run (no session) from a fact never read', () => {
    expect(sshSessionFact().parse('session \n')).toEqual({ read: true, session: null });
    expect(sshSessionFact().parse('')).toEqual({ read: false, session: null });
  });

  it('write an IPv4-mapped client address as IPv4, and reject anything that is not an address', () => {
    expect(parseSshConnection('::ffff:192.0.2.7 40000 ::ffff:10.0.0.1 22')).toMatchObject({ client: '192.0.2.7', server: '10.0.0.1' });
    expect(parseSshConnection('fd00::1 40000 fd00::2 22')).toMatchObject({ client: 'fd00::1' });
    expect(parseSshConnection('$(reboot) 1 2 3')).toBeNull();
    expect(parseSshConnection('')).toBeNull();
  });

  it('read every sshd configuration file with its mode and owner (captured on Debian 12)', () => {
    const files = parseSshdFiles(fixture('debian12-files-conflicts.txt'));
    expect(files.map((f) => [f.path, f.mode, f.owner, f.group])).toEqual([
      ['/etc/ssh/sshd_config', 0o644, 'root', 'root'], ['/etc/ssh/sshd_config.d/00-zanuri-test.conf', 0o644, 'root', 'root'],
    ]);
    expect(files[0]?.content.split('\n')[0]).toBe('PermitRootLogin yes');
    expect(files[0]?.content).toContain('Include /etc/ssh/sshd_config.d/*.conf\n');
  });

  it('read the effective configuration globally and per user, with the connection it was judged for (captured on Debian 12)', () => {
    const effective = sshdEffectiveFact(['deploy', 'root']).parse(fixture('debian12-effective-conflicts.txt'));
    expect(effective.spec).toBe('host=10.213.0.1,addr=10.213.0.1,laddr=10.213.0.15,lport=22');
    expect(effective.global?.get('passwordauthentication')).toBe('yes');
    expect(effective.global?.get('port')).toBe('22');
    expect(effective.users['deploy']?.get('permitrootlogin')).toBe('yes');
    expect(effective.users['root']?.get('kexalgorithms')).toMatch(/^sntrup761x25519-sha512\b/);
  });

  it('say why when sshd -T fails', () => {
    const effective = sshdEffectiveFact(['root']).parse('@@spec host=127.0.0.1,addr=127.0.0.1\n@@global\n/etc/ssh/sshd_config line 3: Bad configuration option: Nonsense\n@@rc 255\n@@user root\n@@rc 255\n');
    expect(effective).toMatchObject({ global: null, users: { root: null }, error: '/etc/ssh/sshd_config line 3: Bad configuration option: Nonsense' });
  });

  it('quote the user names into the script', () => {
    expect(sshdEffectiveFact(['deploy', 'root']).script).toContain('for u in deploy root; do');
  });
});
