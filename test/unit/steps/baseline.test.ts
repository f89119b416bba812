import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Action, Plan } from '../../../src/core/plan.js';
import type { FactRequest, FactValues } from '../../../src/facts/state.js';
import { baseline, defaultBlacklist, hardeningSysctls, loginDefsWith, parseHomes, paths, sysctlCheck } from '../../../src/steps/baseline.js';
import { planStep } from '../../../src/steps/plan.js';
import { b64, ctx } from './facts-of.js';

const defaults = baseline.parseParams({});

/**
 * A Debian 12 container as the facts read it: every fact's raw output by key, with defaults by kind
 * for the many files and kernel parameters the step declares (absent files, sysctl value 0, stopped
 * units), so each test states only what it is about.
 */
interface Host { outputs?: Record<string, string>; container?: boolean; tmp?: string; modes?: (path: string) => string; writable?: (key: string) => boolean; sysctlValue?: (key: string) => string }
function factsFor(host: Host): FactValues {
  const container = host.container ?? true;
  return {
    get<T>(request: FactRequest<T>): T {
      const given = host.outputs?.[request.key];
      if (given !== undefined) return request.parse(given);
      const key = request.key;
      if (key === 'command:["systemd-detect-virt","--container"]') return request.parse(container ? 'systemd-nspawn\n@@rc=0' : 'none\n@@rc=1');
      if (key.startsWith('command:["sh","-c","for k in')) {
        const keys = (JSON.parse(key.slice('command:'.length)) as string[]).slice(4);
        const canWrite = host.writable ?? ((k: string) => !container || k.startsWith('net.'));
        return request.parse(`${keys.filter(canWrite).join('\n')}\n@@rc=0`);
      }
      if (key.startsWith('command:["cat","/sys/module/apparmor')) return request.parse('Y\n@@rc=0');
      if (key.startsWith('command:["findmnt"')) return request.parse(host.tmp === undefined ? '\n@@rc=1' : `${host.tmp}\n@@rc=0`);
      if (key.startsWith('command:["stat"')) return request.parse(`${host.modes?.((JSON.parse(key.slice(8)) as string[]).at(-1) ?? '') ?? '644'}\n@@rc=0`);
      if (key.startsWith('command:')) return request.parse('\n@@rc=0');
      if (key.startsWith('sysctl:')) return request.parse(`value ${host.sysctlValue?.(key.slice(7)) ?? '0'}`);
      if (key.startsWith('file:') || key.startsWith('file@')) return request.parse('absent');
      if (key.startsWith('directory:')) return request.parse('absent');
      if (key.startsWith('service:')) return request.parse('disabled\ninactive');
      if (key.startsWith('packages:') || key === 'held-packages') return request.parse('');
      throw new Error(`no default for ${key}`);
    },
  };
}
const planFor = (host: Host, p = defaults): Plan => planStep(baseline, factsFor(host), p, ctx);
const summary = (a: Action): string => (a.kind === 'put' || a.kind === 'remove' || a.kind === 'chmod' || a.kind === 'directory' ? `${a.kind} ${a.path}` : a.kind === 'run' ? `run ${a.cmd.argv.join(' ')}` : a.kind === 'service' ? `service ${a.op} ${a.unit}` : a.kind);
const put = (plan: Plan, path: string): Extract<Action, { kind: 'put' }> => {
  const found = plan.actions.find((a) => a.kind === 'put' && a.path === path);
  if (found?.kind !== 'put') throw new Error(`no put of ${path} in ${plan.actions.map(summary).join(', ')}`);
  return found;
};
const text = (plan: Plan, path: string): string => String(put(plan, path).content);

/** Every file of a first run, written as the host's content: the facts of a converged host. */
function convergedOutputs(host: Host, p = defaults): Record<string, string> {
  const first = planFor(host, p);
  const outputs: Record<string, string> = {};
  for (const a of first.actions) {
    if (a.kind === 'put') outputs[`file:${a.path}`] = `present ${a.mode.toString(8)} root root\n${b64(String(a.content))}`;
    if (a.kind === 'directory') outputs[`directory:${a.path}`] = 'dir 755 root root';
  }
  outputs['file:/etc/pam.d/common-auth'] = `present 644 root root\n${b64('auth requisite pam_faillock.so preauth\nauth [success=1 default=ignore] pam_unix.so\nauth [default=die] pam_faillock.so authfail\n')}`;
  outputs['file:/etc/pam.d/common-account'] = `present 644 root root\n${b64('account required pam_faillock.so\n')}`;
  outputs['file:/etc/pam.d/common-session'] = `present 644 root root\n${b64('session optional pam_umask.so\n')}`;
  return outputs;
}
const serviceUp = (container: boolean): Record<string, string> => Object.fromEntries(['auditd.service', 'apparmor.service', 'acct.service', 'systemd-journald.service'].map((u) => [`service:${u}`, `enabled\n${container ? 'inactive' : 'active'}`]));
const sysctlWanted = (key: string): string => (hardeningSysctls.find(([k]) => k === key)?.[1] ?? (key === 'fs.suid_dumpable' ? '0' : '?'));

describe('baseline: kernel parameters', () => {
  it('persists every parameter in one sysctl.d file, checked by a reader that applies nothing, and sets only those this host may write', () => {
    const plan = planFor({ sysctlValue: () => '0' });
    const file = put(plan, paths.sysctl);
    expect(file.validate).toEqual(sysctlCheck);
    expect(sysctlCheck.argv.join(' ')).not.toMatch(/sysctl -p|sysctl --system|-w /);
    expect(String(file.content)).toContain('-net.ipv4.conf.all.rp_filter = 1\n');
    expect(String(file.content)).toContain('-kernel.kptr_restrict = 2\n');
    expect(String(file.content)).toContain('-fs.suid_dumpable = 0\n');
    const runs = plan.actions.filter((a) => a.kind === 'run' && a.cmd.argv[0] === 'sysctl').map((a) => (a.kind === 'run' ? a.cmd.argv[3] : ''));
    expect(runs).toContain('net.ipv4.conf.all.rp_filter=1');
    expect(runs).toContain('net.ipv4.tcp_syncookies=1');
    // In a container /proc/sys/kernel is the host's and read-only: no action that would fail on every run.
    expect(runs.filter((r) => r?.startsWith('kernel.') || r?.startsWith('fs.'))).toEqual([]);
  });

  it('sets kernel keys too on a host that may write them, each with its old value as undo', () => {
    const plan = planFor({ container: false, sysctlValue: () => '0' });
    const kptr = plan.actions.find((a) => a.kind === 'run' && a.cmd.argv[3] === 'kernel.kptr_restrict=2');
    expect(kptr).toMatchObject({ undo: { argv: ['sysctl', '-q', '-w', 'kernel.kptr_restrict=0'] }, why: 'kernel.kptr_restrict is 0, not 2' });
  });

  it('is converged in a container once the writable values are set, and says which keys the host kernel keeps', () => {
    // nspawn mounts /tmp as its own tmpfs with nosuid,nodev.
    const host: Host = { sysctlValue: sysctlWanted, tmp: 'rw,nosuid,nodev,size=1634704k,nr_inodes=1048576', modes: (path) => (path.startsWith('/etc/cron.') ? '700' : '600') };
    const outputs = { ...convergedOutputs(host), ...serviceUp(true), 'packages:apparmor': 'apparmor\tii \t3.0.8-3\n', 'packages:logrotate': 'logrotate\tii \t3.21.0-1\n' };
    const plan = planFor({ ...host, outputs });
    expect(plan.actions.map(summary)).toEqual([]);
    expect('noop' in plan && plan.noop).toMatch(/^the baseline hardening is in place \(\d+ kernel parameter\(s\) are read-only here \(a container: the host's kernel decides them\) and are set at boot from \/etc\/sysctl\.d\/60-zanuri-hardening\.conf; auditd is enabled; in a container it cannot run, so it is not started; \/tmp is already its own mount with nosuid,nodev\)$/);
  });

  it('the validator accepts the rendered file and refuses a malformed line or an unknown key (run by dash on this machine)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-sysctl-'));
    const check = (content: string) => {
      const path = join(dir, 'f.conf');
      writeFileSync(path, content);
      const argv = sysctlCheck.argv.map((a) => (a === '{}' ? path : a));
      return spawnSync('dash', ['-c', argv[2] as string, argv[3] as string, path], { encoding: 'utf8' });
    };
    expect(check(text(planFor({}), paths.sysctl)).status).toBe(0);
    expect(check('kernel.kptr_restrict = 2\n').status).toBe(0);
    const typo = check('kernel.kptr_restrict 2\n');
    expect(typo.status).toBe(1);
    expect(typo.stderr).toMatch(/not a sysctl setting/);
    const unknown = check('kernel.no_such_key = 1\n');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/unknown kernel parameter: kernel.no_such_key/);
    expect(check('-kernel.no_such_key = 1\n').status, 'a "-" key may be missing').toBe(0);
    expect(check('kernel.kptr_restrict = 2; reboot\n').status).toBe(1);
  });
});

describe('baseline: files', () => {
  it('refuses the unused filesystems and protocols, core dumps in three places, and logs sudo through visudo-checked sudoers', () => {
    const plan = planFor({});
    const modprobe = text(plan, paths.modprobe);
    for (const m of defaultBlacklist) expect(modprobe).toContain(`blacklist ${m}\ninstall ${m} /bin/true\n`);
    expect(text(plan, paths.limits)).toMatch(/^\*\s+hard\s+core\s+0$/m);
    expect(text(plan, paths.coredump)).toBe('# Managed by zanuri (baseline); edits here are overwritten.\n[Coredump]\nStorage=none\nProcessSizeMax=0\n');
    const sudo = put(plan, paths.sudoers);
    expect(sudo).toMatchObject({ mode: 0o440, validate: { argv: ['visudo', '-cf', '{}'] } });
    expect(String(sudo.content)).toContain('Defaults use_pty\nDefaults logfile="/var/log/sudo.log"\n');
    expect(text(plan, paths.sudoRotate)).toMatch(/^\/var\/log\/sudo\.log \{$/m);
    expect(text(plan, paths.journald)).toContain('Storage=persistent\nCompress=yes\nSystemMaxUse=1G\n');
    expect(put(plan, paths.journald).notify).toEqual([{ unit: 'systemd-journald.service', op: 'restart' }]);
    expect(text(plan, paths.auditRules)).toMatch(/^-w \/etc\/sudoers -p wa -k sudoers$/m);
    expect(text(plan, paths.auditRules)).not.toMatch(/^-e 2/m);
    expect(text(plan, paths.pwquality)).toContain('minlen = 14\n');
    expect(text(plan, paths.faillock)).toContain('deny = 5\nfail_interval = 900\nunlock_time = 900\n');
    expect(text(plan, '/etc/issue')).toMatch(/authorized.*monitored/);
  });

  it('keeps the distribution\'s login.defs and replaces only the managed keys, a fixed point on the second run', () => {
    const debian = '# comment\nMAIL_DIR        /var/mail\nPASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\nUMASK\t\t022\nENCRYPT_METHOD SHA512\n';
    const plan = planFor({ outputs: { 'file:/etc/login.defs': `present 644 root root\n${b64(debian)}` } });
    const written = text(plan, paths.loginDefs);
    expect(written).toContain('MAIL_DIR        /var/mail\n');
    expect(written).toContain('ENCRYPT_METHOD SHA512\n');
    expect(written).not.toMatch(/99999|UMASK\t\t022/);
    expect(written).toMatch(/^PASS_MAX_DAYS 365\nPASS_MIN_DAYS 1\nPASS_WARN_AGE 14\nUMASK 027\n/m);
    const block = written.slice(written.indexOf('# BEGIN zanuri'));
    expect(loginDefsWith(written, block)).toBe(written);
    expect(put(plan, paths.loginDefs).why).toBe('/etc/login.defs lacks the password aging and UMASK 027 of the baseline');
  });

  it('wires pam_faillock and pam_umask through pam-auth-update only while the PAM stack lacks them, with a removal as undo', () => {
    const plan = planFor({});
    const enable = plan.actions.find((a) => a.kind === 'run' && a.cmd.argv[0] === 'pam-auth-update');
    const names = ['zanuri-faillock', 'zanuri-faillock-authfail', 'zanuri-umask'];
    expect(enable).toMatchObject({
      cmd: { argv: ['pam-auth-update', '--enable', ...names], env: { DEBIAN_FRONTEND: 'noninteractive' } },
      undo: { argv: ['pam-auth-update', '--remove', ...names] },
      why: 'the PAM stack lacks zanuri-faillock, zanuri-faillock-authfail, zanuri-umask (failed-password lockout, session umask)',
    });
    const onlyQuality = planFor({}, baseline.parseParams({ loginDefs: false })).actions.find((a) => a.kind === 'run' && a.cmd.argv[0] === 'pam-auth-update');
    expect(onlyQuality?.kind === 'run' && onlyQuality.cmd.argv).toEqual(['pam-auth-update', '--enable', 'zanuri-faillock', 'zanuri-faillock-authfail']);
    const wired = planFor({ outputs: convergedOutputs({}) });
    expect(wired.actions.map(summary).filter((s) => s.includes('pam-auth-update'))).toEqual([]);
  });

  it('enables tmp.mount for the next boot where /tmp is on the root filesystem, and leaves a separate nosuid,nodev /tmp alone', () => {
    const plan = planFor({});
    expect(text(plan, paths.tmpMount)).toMatch(/^Options=mode=1777,strictatime,nosuid,nodev,size=25%,nr_inodes=1m$/m);
    expect(plan.actions.map(summary)).toContain('service enable tmp.mount');
    expect(plan.actions.map(summary)).not.toContain('service start tmp.mount');
    const mounted = planFor({ outputs: { 'command:["findmnt","-n","-o","OPTIONS","--mountpoint","/tmp"]': 'rw,nosuid,nodev,size=1634704k,nr_inodes=1048576\n@@rc=0' } });
    expect(mounted.actions.map(summary).filter((s) => s.includes('tmp.mount'))).toEqual([]);
  });

  it('in a container enables auditd without starting it or loading rules; on a real host loads the rules after they change', () => {
    const inside = planFor({}).actions.map(summary);
    expect(inside).toContain('service enable auditd.service');
    expect(inside).not.toContain('run augenrules --load');
    const real = planFor({ container: false }).actions.map(summary);
    expect(real).toContain('service enable-now auditd.service');
    expect(real.indexOf('run augenrules --load')).toBeGreaterThan(real.indexOf(`put ${paths.auditRules}`));
  });

  it('tightens cron, sshd_config and home directories, each chmod undone with the old mode', () => {
    const plan = planFor({ outputs: { 'command:["sh","-c","getent passwd | while IFS=: read -r n x uid gid g home sh; do case \\"$home\\" in /home/*) [ \\"$uid\\" -ge 1000 ] && [ \\"$uid\\" -lt 65534 ] && [ -d \\"$home\\" ] && [ ! -L \\"$home\\" ] && stat -c \'%a %n\' -- \\"$home\\";; esac; done; true","zanuri-homes"]': '755 /home/deploy\n700 /home/ops\n@@rc=0' } });
    const chmods = plan.actions.filter((a) => a.kind === 'run' && a.cmd.argv[0] === 'chmod');
    expect(text(plan, '/etc/needrestart/conf.d/60-zanuri.conf')).toContain("$nrconf{restart} = 'l';\n");
    expect(chmods).toContainEqual(expect.objectContaining({ cmd: { argv: ['chmod', '600', '--', '/etc/crontab'] }, undo: { argv: ['chmod', '644', '--', '/etc/crontab'] } }));
    expect(chmods).toContainEqual(expect.objectContaining({ cmd: { argv: ['chmod', '700', '--', '/etc/cron.d'] } }));
    expect(chmods).toContainEqual(expect.objectContaining({ cmd: { argv: ['chmod', '750', '--', '/home/deploy'] }, undo: { argv: ['chmod', '755', '--', '/home/deploy'] } }));
    expect(chmods.filter((a) => a.kind === 'run' && a.cmd.argv[3] === '/home/ops')).toEqual([]);
    expect(parseHomes('755 /home/a\nweird line\n2750 /home/b\n')).toEqual([{ path: '/home/a', mode: 0o755 }, { path: '/home/b', mode: 0o2750 }]);
  });
});

describe('baseline: audit tools', () => {
  it('builds the AIDE database once, only while there is none, and logs idle shells out', () => {
    const missing = planFor({ outputs: { 'command:["test","-s","/var/lib/aide/aide.db"]': '\n@@rc=1' } });
    expect(missing.actions).toContainEqual(expect.objectContaining({ kind: 'run', cmd: { argv: ['aideinit', '--yes', '--force'] }, why: 'AIDE has no database of the installed files yet' }));
    expect(planFor({}).actions.map(summary)).not.toContain('run aideinit --yes --force');
    expect(text(planFor({}), paths.profile)).toContain('ulimit -c 0\n');
    expect(text(planFor({}), paths.profile)).toContain('TMOUT=900\nreadonly TMOUT\nexport TMOUT\n');
    expect(text(planFor({}, baseline.parseParams({ shellTimeout: 0 })), paths.profile)).not.toContain('TMOUT');
  });
});

describe('baseline: parameters', () => {
  it('can turn every part off, and then plans nothing at all', () => {
    const off = baseline.parseParams({
      sysctl: false, blacklistModules: [], coreDumps: false, auditd: false, apparmor: false, loginDefs: false, passwordQuality: false, sudoLogging: false,
      journald: false, logrotate: false, tmp: false, banner: null, filePermissions: false, processAccounting: false, privateHomes: false, shellTimeout: 0, fileIntegrity: false, tools: [],
    });
    expect(planFor({}, off)).toEqual({ actions: [], noop: 'the baseline hardening is in place' });
    expect(baseline.packages?.(off)).toEqual([]);
  });

  it('says why each part exists in its description, for the README table', () => {
    const properties = (baseline.params as unknown as { properties: Record<string, { description?: string }> }).properties;
    for (const [name, schema] of Object.entries(properties)) expect((schema.description ?? '').length, name).toBeGreaterThan(20);
  });

  it('refuses values that would corrupt a file or reach a shell, before any connection', () => {
    expect(() => baseline.parseParams({ banner: 'hello\\nworld' })).toThrow(/banner/);
    expect(() => baseline.parseParams({ banner: 'a\nb' })).toThrow(/banner/);
    expect(() => baseline.parseParams({ umask: '27' })).toThrow(/umask must be an octal umask/);
    expect(() => baseline.parseParams({ blacklistModules: ['dccp; reboot'] })).toThrow(/blacklistModules\[0\] must be a kernel module name/);
    expect(() => baseline.parseParams({ journalMaxUse: '1G; x' })).toThrow(/journalMaxUse/);
    expect(() => baseline.parseParams({ sudoLogfile: '/var/log/../x' })).toThrow(/sudoLogfile/);
  });
});
