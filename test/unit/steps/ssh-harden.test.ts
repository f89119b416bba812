import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { AuthError, ConfigError, UnreachableError } from '../../../src/core/errors.js';
import type { Cmd, RunResult, Transport } from '../../../src/core/types.js';
import { fileFact, serviceFact } from '../../../src/facts/state.js';
import { parseSshAlgorithms, parseSshdFiles, sshAlgorithmsFact, sshdEffectiveFact, sshdFilesFact } from '../../../src/facts/sshd.js';
import { rateLimitWindowMs } from '../../../src/steps/access.js';
import { chooseAlgorithms, dropInPath, moduliFact, sshHarden } from '../../../src/steps/ssh-harden.js';
import type { HostContext } from '../../../src/steps/types.js';
import { b64, planOf, present, templates } from './facts-of.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/sshd/${name}`, import.meta.url), 'utf8');
const stock = fixture('debian12-stock-sshd_config');
const testDropIn = '# test target: one host key, known to the test before boot\nHostKey /etc/ssh/ssh_host_ed25519_key\n';

/** What sshdFilesFact prints for these files (its format; the parser is tested on a real capture). */
const filesOutput = (files: Record<string, string>): string =>
  Object.entries(files).map(([path, text]) => `@@file 644 root root ${path}\n${b64(text)}`).join('\n');
const stockFiles = { '/etc/ssh/sshd_config': stock, '/etc/ssh/sshd_config.d/00-zanuri-test.conf': testDropIn };

const params = sshHarden.parseParams({});
/** `ssh -Q` on Debian 12 (OpenSSH 9.2p1), the targets' OpenSSH: a real capture. */
const debianAlgorithms = fixture('debian12-ssh-Q.txt');
const hardened = (root = 'no'): string => String(templates.render('ssh/hardening.conf', {
  ...chooseAlgorithms(parseSshAlgorithms(debianAlgorithms)),
  permitRootLogin: root, maxAuthTries: 6, loginGraceTime: 30, maxStartups: '10:30:60', clientAliveInterval: 300, clientAliveCountMax: 2,
  x11Forwarding: 'no', allowTcpForwarding: 'local', allowAgentForwarding: 'no', permitTunnel: 'no', allowUsers: '',
}).text);

/** sshd -T output as sshd 9.2 prints the hardened settings (keywords lower case, PermitRootLogin prohibit-password as without-password). */
function sshdT(overrides: Record<string, string> = {}, root = 'no'): string {
  const values = new Map<string, string>();
  for (const line of hardened(root).split('\n')) {
    const m = /^([A-Za-z]+) (.*)$/.exec(line);
    if (m?.[1] && !values.has(m[1].toLowerCase())) values.set(m[1].toLowerCase(), m[2] === 'prohibit-password' ? 'without-password' : m[2] ?? '');
  }
  for (const [k, v] of Object.entries(overrides)) values.set(k, v);
  return [...values].map(([k, v]) => `${k} ${v}`).join('\n').replace('loglevel VERBOSE', 'loglevel VERBOSE\nport 22');
}
const effective = (o: { global?: Record<string, string>; deploy?: Record<string, string>; root?: Record<string, string> } = {}, rootLogin = 'no'): string => [
  '@@spec host=10.213.0.1,addr=10.213.0.1,laddr=10.213.0.15,lport=22',
  '@@global', sshdT(o.global, rootLogin), '@@rc 0',
  '@@user deploy', sshdT(o.deploy, rootLogin), '@@rc 0',
  '@@user root', sshdT(o.root, rootLogin), '@@rc 0',
].join('\n');

interface Host { dropIn?: string | null; files?: Record<string, string>; filesRaw?: string; effective?: string; socket?: string; moduli?: string }
const conflictsFiles = parseSshdFiles(fixture('debian12-files-conflicts.txt'));
function planFor(host: Host = {}, p = params, context: { loginUser?: string } = {}) {
  const dropIn = host.dropIn === undefined ? hardened() : host.dropIn;
  return planOf(sshHarden, [
    [serviceFact('ssh.service'), 'enabled\nactive'],
    [serviceFact('ssh.socket'), `disabled\n${host.socket ?? 'inactive'}`],
    [sshdFilesFact(), host.filesRaw ?? filesOutput(host.files ?? stockFiles)],
    [fileFact(dropInPath), dropIn === null ? 'absent' : present(dropIn)],
    [sshdEffectiveFact(['deploy', 'root']), host.effective ?? effective()],
    [sshdEffectiveFact(['root']), host.effective ?? effective({}, 'prohibit-password').replace('@@user deploy', '@@user other')],
    [sshdEffectiveFact(['ubuntu', 'root']), host.effective ?? effective().replace('@@user deploy', '@@user ubuntu')],
    [sshAlgorithmsFact(), debianAlgorithms],
    [moduliFact(3072), host.moduli ?? '0 413\n@@rc=0'],
    [moduliFact(4096), host.moduli ?? '0 413\n@@rc=0'],
    // The file resources that comment lines out read their file as any file resource does.
    ...[...conflictsFiles, ...Object.entries(host.files ?? {}).map(([path, content]) => ({ path, content }))]
      .map((f): [ReturnType<typeof fileFact>, string] => [fileFact(f.path), present(f.content)]),
  ], p, context);
}
const contentOf = (action: unknown): string => String((action as { content: string }).content);

describe('ssh-harden', () => {
  it('writes a drop-in read before everything else, checks it with sshd -t in place and reloads ssh', () => {
    const plan = planFor({ dropIn: null, effective: effective({ global: { passwordauthentication: 'yes' }, deploy: { passwordauthentication: 'yes' }, root: { passwordauthentication: 'yes' } }) });
    expect(plan.actions).toEqual([expect.objectContaining({
      kind: 'put', path: '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf', mode: 0o644, owner: 'root', group: 'root',
      validateInPlace: { argv: ['sshd', '-t'] }, notify: [{ unit: 'ssh.service', op: 'reload' }],
      why: 'password logins are not disabled by zanuri yet (PermitRootLogin no: log in as deploy from now on)',
    })]);
    const content = contentOf(plan.actions[0]);
    for (const line of ['PermitRootLogin no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitEmptyPasswords no', 'MaxAuthTries 6',
      'LoginGraceTime 30', 'MaxStartups 10:30:60', 'ClientAliveInterval 300', 'ClientAliveCountMax 2', 'LogLevel VERBOSE', 'X11Forwarding no',
      'AllowTcpForwarding local', 'AllowAgentForwarding no', 'PermitTunnel no']) {
      expect(content.split('\n'), line).toContain(line);
    }
  });

  it('offers only modern algorithms: no NIST curves, no SHA-1, no umac-64, no 2048-bit groups', () => {
    const content = hardened();
    const list = (keyword: string): string[] => (new RegExp(`^${keyword} (.*)$`, 'm').exec(content)?.[1] ?? '').split(',');
    expect(list('KexAlgorithms')).toEqual(['sntrup761x25519-sha512', 'sntrup761x25519-sha512@openssh.com', 'curve25519-sha256', 'curve25519-sha256@libssh.org',
      'diffie-hellman-group16-sha512', 'diffie-hellman-group18-sha512', 'diffie-hellman-group-exchange-sha256']);
    expect(list('Ciphers')).toEqual(['chacha20-poly1305@openssh.com', 'aes256-gcm@openssh.com', 'aes128-gcm@openssh.com', 'aes256-ctr', 'aes192-ctr', 'aes128-ctr']);
    const settings = content.split('\n').filter((l) => !l.startsWith('#')).join('\n');
    for (const weak of [/nistp/, /sha1/, /umac-64/, /group14/, /group1-/, /cbc/, /3des/]) expect(settings).not.toMatch(weak);
    expect(list('MACs').every((m) => /^(hmac-sha2-(256|512)(-etm@openssh\.com)?|umac-128-etm@openssh\.com)$/.test(m))).toBe(true);
  });

  it('offers what the host\'s own OpenSSH supports, best first: ML-KEM where it exists, no sntrup on an OpenSSH without it, a safe common list when ssh -Q cannot be read', () => {
    // CONSTRUCTED from the Debian 12 capture: plus ML-KEM (as OpenSSH 9.9+ lists it), minus both sntrup names (as before 8.5).
    const withMlkem = debianAlgorithms.replace('@@kex\n', '@@kex\nmlkem768x25519-sha256\n');
    expect(chooseAlgorithms(parseSshAlgorithms(withMlkem)).kex.split(',').slice(0, 2)).toEqual(['mlkem768x25519-sha256', 'sntrup761x25519-sha512']);
    const noSntrup = debianAlgorithms.split('\n').filter((l) => !l.startsWith('sntrup')).join('\n');
    expect(chooseAlgorithms(parseSshAlgorithms(noSntrup)).kex).toBe('curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256');
    const unreadable = chooseAlgorithms(parseSshAlgorithms('@@kex\n@@none\n@@cipher\n@@none\n@@mac\n@@none\n'));
    expect(unreadable.kex).toBe('curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256');
    expect(unreadable.cipher).toBe('chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr');
    // The plan follows the host: a host with ML-KEM gets it in its drop-in.
    const plan = planOf(sshHarden, [
      [serviceFact('ssh.service'), 'enabled\nactive'], [serviceFact('ssh.socket'), 'disabled\ninactive'], [sshdFilesFact(), filesOutput(stockFiles)],
      [fileFact(dropInPath), 'absent'], [sshdEffectiveFact(['deploy', 'root']), effective()], [moduliFact(3072), '0 413\n@@rc=0'], [sshAlgorithmsFact(), withMlkem],
    ], params);
    expect(contentOf(plan.actions[0])).toMatch(/^KexAlgorithms mlkem768x25519-sha256,sntrup761x25519-sha512,/m);
  });

  it('keeps root logins by key when root itself is the proven login (no deploy user), and turns them off for a sudoer login', () => {
    const noDeploy = sshHarden.parseParams({ deployUser: null });
    const asRoot = planFor({ dropIn: null }, noDeploy, { loginUser: 'root' });
    expect(contentOf(asRoot.actions[0])).toContain('PermitRootLogin prohibit-password\n');
    const asUbuntu = planFor({ dropIn: null }, noDeploy, { loginUser: 'ubuntu' });
    expect(contentOf(asUbuntu.actions[0])).toContain('PermitRootLogin no\n');
    expect(asUbuntu.actions[0]?.why).toMatch(/log in as ubuntu from now on/);
    expect(contentOf(planFor({ dropIn: null }, sshHarden.parseParams({ permitRootLogin: 'prohibit-password' })).actions[0])).toContain('PermitRootLogin prohibit-password\n');
  });

  it('lists AllowUsers only when users are given', () => {
    const plan = planFor({ dropIn: null }, sshHarden.parseParams({ allowUsers: ['deploy', 'ops'] }));
    expect(contentOf(plan.actions[0])).toMatch(/\nAllowUsers deploy ops\n$/);
    expect(hardened()).not.toMatch(/AllowUsers/);
  });

  it('says in the plan that a low MaxAuthTries cuts off an agent holding more keys', () => {
    const plan = planFor({ dropIn: null }, sshHarden.parseParams({ maxAuthTries: 3 }));
    expect(plan.actions[0]?.why).toMatch(/MaxAuthTries 3: an agent that offers 3 other keys before the right one is refused \(IdentitiesOnly avoids that\)$/);
    expect(planFor({ dropIn: null }).actions[0]?.why).not.toMatch(/MaxAuthTries/);
  });

  it('restarts instead of reloading when ssh is socket-activated (Ubuntu 22.10+)', () => {
    const plan = planFor({ dropIn: null, socket: 'active' });
    expect(plan.actions[0]).toMatchObject({ notify: [{ unit: 'ssh.service', op: 'restart' }] });
  });

  it('leaves a converged host alone and says what sshd itself reports', () => {
    expect(planFor()).toEqual({
      actions: [],
      noop: `sshd's effective configuration (sshd -T, and for deploy and root from addr=10.213.0.1,laddr=10.213.0.15,lport=22) is keys only, PermitRootLogin no, as ${dropInPath} says; /etc/ssh/moduli has no modulus under 3072 bits`,
    });
  });

  it('puts back the owner of a drop-in someone else owns, and says so', () => {
    const plan = planOf(sshHarden, [
      [serviceFact('ssh.service'), 'enabled\nactive'], [serviceFact('ssh.socket'), 'disabled\ninactive'], [sshdFilesFact(), filesOutput(stockFiles)],
      [fileFact(dropInPath), present(hardened(), '644', 'nobody', 'nogroup')], [sshdEffectiveFact(['deploy', 'root']), effective()], [moduliFact(3072), '0 413\n@@rc=0'],
      [sshAlgorithmsFact(), debianAlgorithms],
    ], params);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'chmod', owner: 'root', group: 'root', why: `${dropInPath} is 0644 nobody:nogroup, not 0644 root:root` })]);
  });

  describe('judged by the effective configuration', () => {
    // Captured on a Debian 12 target: PermitRootLogin yes before the Include line, and a Match block that turns passwords back on.
    const conflicts = { filesRaw: fixture('debian12-files-conflicts.txt'), effective: fixture('debian12-effective-conflicts.txt') };

    it('finds a Match block that re-enables passwords and a line read before the drop-in, and comments them out with the reason', () => {
      const plan = planFor({ ...conflicts, dropIn: null });
      expect(plan.actions.map((a) => (a.kind === 'put' ? a.path : a.kind))).toEqual([dropInPath, '/etc/ssh/sshd_config']);
      const fix = plan.actions[1];
      expect(fix).toMatchObject({ kind: 'put', mode: 0o644, owner: 'root', group: 'root', validateInPlace: { argv: ['sshd', '-t'] }, notify: [{ unit: 'ssh.service', op: 'reload' }] });
      expect(fix?.why).toBe(`/etc/ssh/sshd_config:1 "PermitRootLogin yes" is read before ${dropInPath} and wins over its "permitrootlogin no"; ` +
        '/etc/ssh/sshd_config:125 "PasswordAuthentication yes" in "Match Address 10.213.0.0/24" lets in more than "passwordauthentication no" for the connections it matches: commented out');
      const after = contentOf(fix).split('\n');
      expect(after.slice(0, 2)).toEqual([`# zanuri (ssh-harden) turned the next line off: /etc/ssh/sshd_config:1 "PermitRootLogin yes" is read before ${dropInPath} and wins over its "permitrootlogin no"`, '#PermitRootLogin yes']);
      expect(after).toContain('#  PasswordAuthentication yes');
      expect(after).toContain('Match Address 10.213.0.0/24');
      expect(after.filter((l) => /^\s*[A-Za-z]/.test(l))).not.toContainEqual(expect.stringMatching(/PasswordAuthentication yes|PermitRootLogin yes/));
    });

    it('still fixes those lines when the drop-in is already in place (the state the old step reported as converged)', () => {
      const plan = planFor(conflicts);
      expect(plan.actions.map((a) => (a.kind === 'put' ? a.path : a.kind))).toEqual(['/etc/ssh/sshd_config']);
    });

    it('leaves a Match block that only tightens (or is about other settings) alone', () => {
      const tight = stock + 'Match User backup\n  PasswordAuthentication no\n  AllowTcpForwarding yes\n  PermitRootLogin no\n';
      expect(planFor({ files: { ...stockFiles, '/etc/ssh/sshd_config': tight } }).actions).toEqual([]);
    });

    it('catches a drop-in that sorts before its own, an alias and Key=value spelling', () => {
      const early = 'ChallengeResponseAuthentication=yes\nCiphers +aes128-cbc\n';
      const plan = planFor({ files: { ...stockFiles, '/etc/ssh/sshd_config.d/00-aaa.conf': early } });
      expect(plan.actions).toHaveLength(1);
      expect(plan.actions[0]).toMatchObject({ kind: 'put', path: '/etc/ssh/sshd_config.d/00-aaa.conf' });
      expect(contentOf(plan.actions[0])).toMatch(/^# zanuri .*\n#ChallengeResponseAuthentication=yes\n# zanuri .*\n#Ciphers \+aes128-cbc\n$/);
    });

    it('refuses, with the evidence, when sshd disagrees and no line explains it', () => {
      const plan = (): unknown => planFor({ effective: effective({ deploy: { passwordauthentication: 'yes' } }) });
      expect(plan).toThrow(ConfigError);
      expect(plan).toThrow(`ssh-harden: sshd's effective configuration disagrees with ${dropInPath}, and no line of sshd_config or its Includes explains it: ` +
        'passwordauthentication yes (not no) for deploy (host=10.213.0.1,addr=10.213.0.1,laddr=10.213.0.15,lport=22)');
    });

    it('refuses when no Include reads the drop-in, or reads it only inside a Match block', () => {
      const noInclude = stock.replace(/^Include .*$/m, '');
      expect(() => planFor({ dropIn: null, files: { '/etc/ssh/sshd_config': noInclude } })).toThrow(/no Include line in \/etc\/ssh\/sshd_config reads/);
      const inMatch = noInclude + 'Match Group admins\n  Include sshd_config.d/*.conf\n';
      expect(() => planFor({ dropIn: null, files: { '/etc/ssh/sshd_config': inMatch } })).toThrow(/sshd_config:\d+ includes .* inside "Match Group admins"/);
    });

    it('does not judge before sshd is installed (no sshd_config, sshd -T failing)', () => {
      const plan = planFor({ dropIn: null, filesRaw: '', effective: '@@spec host=127.0.0.1,addr=127.0.0.1\n@@global\nsh: 1: sshd: not found\n@@rc 127' });
      expect(plan.actions.map((a) => a.kind)).toEqual(['put']);
    });
  });

  describe('Diffie-Hellman moduli', () => {
    it('removes the moduli under 3072 bits, keeping the old file for the undo', () => {
      const plan = planFor({ moduli: '60 363\n@@rc=0' });
      expect(plan.actions).toEqual([expect.objectContaining({
        kind: 'run', why: '/etc/ssh/moduli offers 60 Diffie-Hellman moduli under 3072 bits to group-exchange clients',
        display: 'remove the 60 moduli under 3072 bits from /etc/ssh/moduli (the old file kept in /var/lib/zanuri/backup/etc/ssh/moduli)',
        undo: { argv: ['sh', '-c', expect.any(String), 'zanuri-moduli', '/etc/ssh/moduli', '/var/lib/zanuri/backup/etc/ssh/moduli'] },
      })]);
      expect((plan.actions[0] as { cmd: Cmd }).cmd.argv.slice(3)).toEqual(['zanuri-moduli', '/etc/ssh/moduli', '3071', '/var/lib/zanuri/backup/etc/ssh/moduli']);
    });

    it('leaves a file with only weak moduli alone (sshd would have none), and a missing file, and says so', () => {
      expect(planFor({ moduli: '60 0\n@@rc=0' })).toMatchObject({ actions: [], noop: expect.stringMatching(/\/etc\/ssh\/moduli has only moduli under 3072 bits, so it is left as it is$/) });
      expect(planFor({ moduli: 'awk: cannot open /etc/ssh/moduli\n@@rc=2' }).actions).toEqual([]);
    });

    it('follows moduliMinBits, and leaves the file alone when it is null', () => {
      expect(planFor({ moduli: '136 289\n@@rc=0' }, sshHarden.parseParams({ moduliMinBits: 4096 })).actions[0]?.why).toMatch(/136 Diffie-Hellman moduli under 4096 bits/);
      expect(planFor({ moduli: '60 363\n@@rc=0' }, sshHarden.parseParams({ moduliMinBits: null })).actions).toEqual([]);
    });
  });

  describe('proofs', () => {
    const ok = (stdout = ''): RunResult => ({ command: '', target: 't', exitCode: 0, stdout, stderr: '', durationMs: 0, ok: true });
    function host(o: { loginUser?: string; fresh?: string[]; failures?: Error[]; effective?: string } = {}): HostContext {
      const failures = [...(o.failures ?? [])];
      const connect = async (user: string): Promise<Transport> => {
        const failure = failures.shift();
        if (failure) throw failure;
        return { run: async (cmd: Cmd) => { o.fresh?.push(`${user}: ${cmd.argv.join(' ')}`); return ok(); }, close: async () => {} } as unknown as Transport;
      };
      return {
        loginUser: o.loginUser ?? 'root', sshPort: 22, local: false, target: 't',
        run: async (cmd) => ok(cmd.argv[0] === 'cat' ? hardened() : o.effective ?? effective()),
        connectFresh: () => connect(o.loginUser ?? 'root'),
        connectAs: (user) => connect(user),
      };
    }

    it('proves the deploy user\'s fresh key login and passwordless sudo before changing anything', async () => {
      const fresh: string[] = [];
      await sshHarden.beforeApply?.(host({ fresh }), params);
      expect(fresh).toEqual(['deploy: sudo -n true']);
    });

    it('refuses PermitRootLogin no when root is the only proven login', async () => {
      await expect(sshHarden.beforeApply?.(host(), sshHarden.parseParams({ deployUser: null, permitRootLogin: 'no' })))
        .rejects.toThrow('ssh-harden: permitRootLogin "no" with root as the only proven login would lock the operator out');
    });

    it('after the reload, retries the fresh login while sshd restarts', async () => {
      const fresh: string[] = [];
      const restarting = [new UnreachableError('cannot reach deploy@t: ECONNREFUSED'), new UnreachableError('cannot reach deploy@t: ECONNRESET')];
      await sshHarden.verify?.(host({ fresh, failures: restarting }), params);
      expect(fresh).toEqual(['deploy: sudo -n true']);
    });

    it('does not retry a refused key (it would only feed fail2ban)', async () => {
      const fresh: string[] = [];
      await expect(sshHarden.verify?.(host({ fresh, failures: [new AuthError('authentication to deploy@t failed')] }), params)).rejects.toThrow(AuthError);
      expect(fresh).toEqual([]);
    });

    it('after the quick attempts were all refused (ufw limit counts them too), tries once more after the window', async () => {
      vi.useFakeTimers();
      try {
        const fresh: string[] = [];
        const refused = Array.from({ length: 5 }, () => new UnreachableError('cannot reach deploy@t: ECONNREFUSED'));
        const proof = sshHarden.verify?.(host({ fresh, failures: refused }), params);
        await vi.advanceTimersByTimeAsync(7_000 + rateLimitWindowMs);
        await proof;
        expect(fresh).toEqual(['deploy: sudo -n true']);
      } finally {
        vi.useRealTimers();
      }
    });

    it('gives up after a bounded number of attempts', async () => {
      const down = Array.from({ length: 6 }, () => new UnreachableError('cannot reach deploy@t: ETIMEDOUT'));
      const started = Date.now();
      await expect(sshHarden.verify?.(host({ failures: down }), params)).rejects.toThrow(/ETIMEDOUT/);
      expect(Date.now() - started).toBeLessThan(10_000);
    }, 15_000);

    it('fails (and so rolls back) when sshd\'s effective configuration after the reload is not the hardened one', async () => {
      const still = effective({ root: { passwordauthentication: 'yes' } });
      await expect(sshHarden.verify?.(host({ effective: still }), params)).rejects.toThrow(/after the reload sshd's effective configuration is not the hardened one: passwordauthentication yes \(not no\) for root/);
    });
  });

  it('refuses bad values', () => {
    expect(() => sshHarden.parseParams({ permitRootLogin: 'yes' })).toThrow(/"no" or "prohibit-password"/);
    expect(() => sshHarden.parseParams({ allowUsers: ['ok', 'bad user'] })).toThrow(/allowUsers\[1\]/);
    expect(() => sshHarden.parseParams({ maxAuthTries: 1 })).toThrow(/maxAuthTries/);
    expect(() => sshHarden.parseParams({ maxStartups: '10:30:60\nPasswordAuthentication yes' })).toThrow(/maxStartups must be start:rate:full/);
    expect(() => sshHarden.parseParams({ allowTcpForwarding: 'remote' })).toThrow(/allowTcpForwarding/);
    expect(() => sshHarden.parseParams({ moduliMinBits: 1024 })).toThrow(/moduliMinBits/);
  });
});
