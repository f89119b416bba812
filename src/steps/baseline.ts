import type { Content, Templates } from '../core/content.js';
import type { Cmd } from '../core/types.js';
import { commandFact, fileFact, sysctlFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import { service } from '../resources/service.js';
import { sysctl } from '../resources/sysctl.js';
import type { Resource } from '../resources/types.js';
import { absolutePath, params, Type } from './schema.js';
import { defineStep } from './types.js';

/**
 * Kernel parameters of the baseline: network (no redirects or source routes, reverse-path filter,
 * SYN cookies, martians logged) and kernel (pointers and dmesg hidden, ptrace limited to parents,
 * BPF and TTY line disciplines closed, link and FIFO protections). Values are those of CIS and of
 * Lynis's scan profile. Forwarding is left alone: a host running containers needs it.
 */
export const hardeningSysctls: ReadonlyArray<readonly [string, string]> = [
  ['net.ipv4.conf.all.rp_filter', '1'], ['net.ipv4.conf.default.rp_filter', '1'],
  ['net.ipv4.conf.all.accept_redirects', '0'], ['net.ipv4.conf.default.accept_redirects', '0'],
  ['net.ipv4.conf.all.secure_redirects', '0'], ['net.ipv4.conf.default.secure_redirects', '0'],
  ['net.ipv4.conf.all.send_redirects', '0'], ['net.ipv4.conf.default.send_redirects', '0'],
  ['net.ipv4.conf.all.accept_source_route', '0'], ['net.ipv4.conf.default.accept_source_route', '0'],
  ['net.ipv4.conf.all.log_martians', '1'], ['net.ipv4.conf.default.log_martians', '1'],
  ['net.ipv4.conf.all.bootp_relay', '0'], ['net.ipv4.conf.all.proxy_arp', '0'],
  ['net.ipv4.icmp_echo_ignore_broadcasts', '1'], ['net.ipv4.icmp_ignore_bogus_error_responses', '1'],
  ['net.ipv4.tcp_syncookies', '1'],
  ['net.ipv6.conf.all.accept_redirects', '0'], ['net.ipv6.conf.default.accept_redirects', '0'],
  ['net.ipv6.conf.all.accept_source_route', '0'], ['net.ipv6.conf.default.accept_source_route', '0'],
  ['kernel.kptr_restrict', '2'], ['kernel.dmesg_restrict', '1'], ['kernel.yama.ptrace_scope', '1'],
  ['kernel.randomize_va_space', '2'], ['kernel.sysrq', '0'], ['kernel.ctrl-alt-del', '0'], ['kernel.unprivileged_bpf_disabled', '1'],
  ['kernel.perf_event_paranoid', '3'], ['kernel.core_uses_pid', '1'], ['net.core.bpf_jit_harden', '2'],
  ['dev.tty.ldisc_autoload', '0'],
  ['fs.protected_hardlinks', '1'], ['fs.protected_symlinks', '1'], ['fs.protected_fifos', '2'], ['fs.protected_regular', '2'],
];
/** Part of "core dumps off": no dumps of set-user-ID programs. */
const coreDumpSysctl = ['fs.suid_dumpable', '0'] as const;

export const defaultBlacklist = ['cramfs', 'freevxfs', 'hfs', 'hfsplus', 'jffs2', 'udf', 'dccp', 'sctp', 'rds', 'tipc', 'usb-storage', 'firewire-core'];
export const defaultBanner = 'This is a private system. Access is restricted to authorized users; unauthorized access is prohibited. Activity is monitored and logged under the owner\'s security policy.';

export const paths = {
  sysctl: '/etc/sysctl.d/60-zanuri-hardening.conf',
  modprobe: '/etc/modprobe.d/60-zanuri-blacklist.conf',
  limits: '/etc/security/limits.d/60-zanuri-coredump.conf',
  coredumpDir: '/etc/systemd/coredump.conf.d',
  coredump: '/etc/systemd/coredump.conf.d/60-zanuri.conf',
  auditRules: '/etc/audit/rules.d/zanuri.rules',
  loginDefs: '/etc/login.defs',
  pwqualityDir: '/etc/security/pwquality.conf.d',
  pwquality: '/etc/security/pwquality.conf.d/60-zanuri.conf',
  faillock: '/etc/security/faillock.conf',
  pamFaillock: '/usr/share/pam-configs/zanuri-faillock',
  pamFaillockFail: '/usr/share/pam-configs/zanuri-faillock-authfail',
  pamUmask: '/usr/share/pam-configs/zanuri-umask',
  needrestart: '/etc/needrestart/conf.d/60-zanuri.conf',
  sudoers: '/etc/sudoers.d/60-zanuri-logging',
  sudoRotate: '/etc/logrotate.d/zanuri-sudo',
  journaldDir: '/etc/systemd/journald.conf.d',
  journald: '/etc/systemd/journald.conf.d/60-zanuri.conf',
  tmpMount: '/etc/systemd/system/tmp.mount',
  profile: '/etc/profile.d/zanuri-hardening.sh',
  aideDb: '/var/lib/aide/aide.db',
} as const;

const on = (description: string) => Type.Boolean({ default: true, description });

/** `systemd-detect-virt --container` exits 0 in a container (the same request as timesync's, read once). */
const containerFact = () => commandFact(['systemd-detect-virt', '--container']);
const inContainer = (facts: FactValues): boolean => facts.get(containerFact()).exitCode === 0;

/** Which of these kernel parameters this host can write: in a container most of /proc/sys is read-only. */
const writableScript = 'for k in "$@"; do p=/proc/sys/$(printf %s "$k" | tr . /); if [ -w "$p" ]; then echo "$k"; fi; done';
export const writableSysctlsFact = (keys: readonly string[]) => commandFact(['sh', '-c', writableScript, 'zanuri-sysctl-writable', ...keys]);
const writable = (facts: FactValues, keys: readonly string[]): Set<string> => new Set(facts.get(writableSysctlsFact(keys)).stdout.split('\n').filter(Boolean));

/**
 * The validator of a sysctl.d file. `sysctl -p FILE` would apply it (a change, not a check); this
 * only reads it: every line a comment or `[-]key = value`, and every key not marked "-" known to
 * this kernel. '{}' is the staged copy.
 */
const sysctlCheckScript = `bad=0
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in ''|'#'*|';'*) continue ;; esac
  k=$(printf '%s' "$line" | sed -n 's/^\\(-\\{0,1\\}\\)\\([a-z0-9_.-]*\\) = [0-9 ]*$/\\1\\2/p')
  if [ -z "$k" ]; then echo "not a sysctl setting: $line" >&2; bad=1; continue; fi
  case "$k" in -*) continue ;; esac
  if [ ! -e "/proc/sys/$(printf %s "$k" | tr . /)" ]; then echo "unknown kernel parameter: $k" >&2; bad=1; fi
done < "$1"
exit $bad`;
export const sysctlCheck: Cmd = { argv: ['sh', '-c', sysctlCheckScript, 'zanuri-sysctl-check', '{}'] };

/** /tmp's mount options, when /tmp is a mount point of its own (exit 1 otherwise). */
const tmpMountFact = () => commandFact(['findmnt', '-n', '-o', 'OPTIONS', '--mountpoint', '/tmp']);
const tmpState = (facts: FactValues): 'hardened' | 'mount-lacks' | 'not-mounted' => {
  const found = facts.get(tmpMountFact());
  if (found.exitCode !== 0) return 'not-mounted';
  const options = found.stdout.trim().split(',');
  return options.includes('nosuid') && options.includes('nodev') ? 'hardened' : 'mount-lacks';
};

const appArmorFact = () => commandFact(['cat', '/sys/module/apparmor/parameters/enabled']);
const hasAppArmor = (facts: FactValues): boolean => facts.get(appArmorFact()).exitCode === 0 && facts.get(appArmorFact()).stdout.trim() === 'Y';

const commonAuth = fileFact('/etc/pam.d/common-auth');
const commonAccount = fileFact('/etc/pam.d/common-account');
const commonSession = fileFact('/etc/pam.d/common-session');

/**
 * zanuri's pam-auth-update profiles (faillock counts failed passwords; pam_umask applies login.defs'
 * UMASK to every session) and the one pam-auth-update run that puts them in the PAM stack, only
 * while the stack lacks them or a profile changed. Undo: the same profiles removed.
 */
function pamProfiles(facts: FactValues, p: { passwordQuality: boolean; loginDefs: boolean }, templates: Templates): Resource[] {
  const profiles = [
    ...(p.passwordQuality ? [
      { name: 'zanuri-faillock', path: paths.pamFaillock, template: 'baseline/pam-faillock', inStack: () => /pam_faillock\.so\s+preauth/.test(facts.get(commonAuth).content ?? '') && /pam_faillock\.so/.test(facts.get(commonAccount).content ?? '') },
      { name: 'zanuri-faillock-authfail', path: paths.pamFaillockFail, template: 'baseline/pam-faillock-authfail', inStack: () => /pam_faillock\.so\s+authfail/.test(facts.get(commonAuth).content ?? '') },
    ] : []),
    ...(p.loginDefs ? [{ name: 'zanuri-umask', path: paths.pamUmask, template: 'baseline/pam-umask', inStack: () => /pam_umask\.so/.test(facts.get(commonSession).content ?? '') }] : []),
  ];
  if (!profiles.length) return [];
  const out: Resource[] = [];
  const missing: string[] = [];
  const changed: string[] = [];
  for (const profile of profiles) {
    const content = templates.render(profile.template, {});
    if (facts.get(fileFact(profile.path)).content !== String(content.text)) changed.push(profile.name);
    if (!profile.inStack()) missing.push(profile.name);
    out.push(file(profile.path, content, { whyMissing: `pam-auth-update has no ${profile.name} profile` }));
  }
  const names = profiles.map((x) => x.name);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  const why = missing.length ? `the PAM stack lacks ${missing.join(', ')} (failed-password lockout, session umask)` : changed.length ? `the PAM profiles ${changed.join(', ')} changed` : null;
  out.push(command('pam-auth-update', why, { argv: ['pam-auth-update', '--enable', ...names], env }, {
    describe: `the PAM stack has ${names.join(', ')}`, undo: { argv: ['pam-auth-update', '--remove', ...names], env },
  }));
  return out;
}

/** Files and directories that must not be readable by everyone (the cron tables, sshd's config). */
const privateFiles = ['/etc/crontab', '/etc/ssh/sshd_config'];
const privateDirs = ['/etc/cron.d', '/etc/cron.daily', '/etc/cron.hourly', '/etc/cron.weekly', '/etc/cron.monthly'];
const modeFact = (path: string) => commandFact(['stat', '-c', '%a', '--', path]);

/**
 * /etc/login.defs has no drop-in directory: the host's own file, with the managed keys' lines taken
 * out and the rendered block (between its BEGIN/END markers) appended. Pure, and a fixed point.
 */
export function loginDefsWith(current: string | null, block: string): string {
  const keys = new Set(block.split('\n').filter((l) => /^[A-Z_]+\s/.test(l)).map((l) => l.split(/\s+/)[0]));
  const begin = block.split('\n')[0] ?? '';
  const end = block.trimEnd().split('\n').pop() ?? '';
  const lines: string[] = [];
  let inBlock = false;
  for (const line of (current ?? '').split('\n')) {
    if (line === begin) { inBlock = true; continue; }
    if (inBlock) { if (line === end) inBlock = false; continue; }
    const key = /^\s*([A-Z_]+)\s/.exec(line)?.[1];
    if (key && keys.has(key)) continue;
    lines.push(line);
  }
  const rest = lines.join('\n').replace(/\n+$/, '');
  return rest ? `${rest}\n\n${block}` : block;
}

const size = (description: string, fallback: string) => Type.String({ pattern: '^[1-9][0-9]{0,5}[KMG]$|^[1-9][0-9]?%$', what: 'a size like 500M or 2G (or a percentage for /tmp)', default: fallback, description });

/**
 * The host baseline a CIS reviewer or Lynis looks for, each part with its own switch: kernel
 * parameters, unused modules refused, no core dumps, auditd, AppArmor, password policy and
 * lockout, sudo logging, a persistent bounded journal, logrotate, /tmp mounted nosuid,nodev, a
 * legal banner, tighter permissions, and a few audit tools. In a container, what belongs to the
 * host's kernel (most of /proc/sys, auditd, AppArmor, /tmp) is written for the next boot of a real
 * host and not forced now: the step says so rather than fail or report a change on every run.
 */
export const baseline = defineStep({
  id: 'baseline',
  title: 'Baseline hardening',
  // Password aging applies to accounts created after it: the deploy user is made first.
  after: ['deploy-user', 'ssh-harden', 'timesync'],
  params: params({
    sysctl: on('Network and kernel hardening through /etc/sysctl.d (no ICMP redirects or source routing, reverse-path filter, SYN cookies, kernel pointers and dmesg hidden, ptrace only of children, link and FIFO protections): closes spoofing and local information leaks. Keys the kernel does not let this host write (a container) are persisted for boot, not forced.'),
    blacklistModules: Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}$', what: 'a kernel module name' }), {
      default: defaultBlacklist, description: 'Kernel modules that may never load (rare filesystems, the DCCP/SCTP/RDS/TIPC protocols, USB and FireWire storage): less kernel code reachable by an attacker, no data carried off on a USB stick. Empty: none.',
    }),
    coreDumps: on('No core dumps (limits, fs.suid_dumpable = 0, systemd-coredump Storage=none): a dump of a process holding keys or passwords is a copy of them on disk.'),
    auditd: on('auditd with a rule set (identity, sudoers, sshd, logins, time, modules, mounts, permission changes): a trail of who changed what. In a container auditd cannot run; it is enabled for a real host, not started.'),
    apparmor: on('AppArmor on (package and service) where the kernel has it: confines the services that ship profiles. In a container it is enabled, not started.'),
    loginDefs: on('login.defs: password aging and UMASK: new files are not world-readable. Aging applies to accounts created afterwards (zanuri\'s deploy user is key-only and made before).'),
    passMaxDays: Type.Integer({ minimum: 1, maximum: 99999, default: 365, description: 'PASS_MAX_DAYS: a password older than this must be changed.' }),
    passMinDays: Type.Integer({ minimum: 0, maximum: 365, default: 1, description: 'PASS_MIN_DAYS: days before a password may be changed again (stops cycling back to the old one).' }),
    passWarnAge: Type.Integer({ minimum: 0, maximum: 365, default: 14, description: 'PASS_WARN_AGE: days of warning before a password expires.' }),
    umask: Type.String({ pattern: '^0[0-7]{2,3}$', what: 'an octal umask like 027', default: '027', description: 'UMASK in login.defs: files of new sessions readable by owner and group only.' }),
    passwordQuality: on('Password quality (libpam-pwquality) and account lockout after failed password attempts (pam_faillock): guessing is slow and noticed. Key logins are not affected; root is never locked.'),
    minPasswordLength: Type.Integer({ minimum: 8, maximum: 128, default: 14, description: 'pwquality minlen: the shortest password accepted (length beats complexity).' }),
    faillockDeny: Type.Integer({ minimum: 1, maximum: 100, default: 5, description: 'Failed password attempts that lock an account (pam_faillock deny).' }),
    faillockUnlockTime: Type.Integer({ minimum: 0, maximum: 86400, default: 900, description: 'Seconds a locked account stays locked (0: until an administrator runs faillock --reset).' }),
    sudoLogging: on('sudo runs commands in a pseudo-terminal (Defaults use_pty) and logs them to a file that logrotate rotates: what was done as root is on record.'),
    sudoLogfile: absolutePath({ default: '/var/log/sudo.log', description: 'Where sudo logs every command.' }),
    journald: on('A persistent, compressed journal bounded by journalMaxUse: logs survive reboots and cannot fill the disk.'),
    journalMaxUse: size('SystemMaxUse of the journal.', '1G'),
    logrotate: on('logrotate installed: classic log files are rotated and compressed.'),
    tmp: on('/tmp mounted as its own tmpfs with nosuid,nodev (tmp.mount, from the next boot): nothing set-user-ID or device node runs from it and it cannot fill the root filesystem. Where /tmp is already its own mount (a container) it is left as it is.'),
    tmpSize: size('Size of the /tmp tmpfs.', '25%'),
    banner: Type.Union([Type.String({ pattern: '^[ -\\[\\]-~]{1,400}$', what: 'one line of printable ASCII without backslashes' }), Type.Null()], {
      default: defaultBanner, description: 'Legal notice in /etc/issue and /etc/issue.net: warns that access is restricted and monitored. null: leave both files alone.',
    }),
    filePermissions: on('The cron tables and directories and sshd_config readable by root only: a user cannot read what runs as root or when.'),
    processAccounting: on('Process accounting (acct): which commands every user ran, kept under /var/log/account. In a container the kernel refuses it; it is enabled for a real host, not started.'),
    privateHomes: on('Home directories of regular users (uid 1000 and up) mode 0750 or stricter: users cannot read each other\'s files. Turn it off when a web server serves files from a home directory.'),
    shellTimeout: Type.Integer({ minimum: 0, maximum: 86400, default: 900, description: 'Seconds after which an idle interactive shell logs out (TMOUT, read-only): no root shell left open on an unattended terminal. 0: no timeout.' }),
    fileIntegrity: on('AIDE with a database of the installed files, checked daily by its timer: a changed binary or configuration is reported. The first run builds the database (a few minutes on a large disk).'),
    tools: Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9+.-]{1,63}$', what: 'a Debian package name' }), {
      default: ['debsums', 'apt-show-versions', 'apt-listchanges', 'needrestart', 'libpam-tmpdir'],
      description: 'Audit helpers to install: debsums verifies installed files, apt-show-versions lists pending updates, apt-listchanges shows what an upgrade changes, needrestart lists services still running old libraries (set to list only, never restart), libpam-tmpdir gives each session a private TMPDIR. chkrootkit can be added. Empty: none.',
    }),
  }),

  packages: (p) => [
    ...(p.auditd ? ['auditd'] : []),
    // cracklib-runtime builds the dictionary pwquality's dictcheck reads: without it every password change fails.
    ...(p.passwordQuality ? ['libpam-pwquality', 'libpam-modules', 'cracklib-runtime'] : []),
    ...(p.logrotate || p.sudoLogging ? ['logrotate'] : []),
    ...(p.sudoLogging ? ['sudo'] : []),
    ...(p.sysctl || p.coreDumps ? ['procps'] : []),
    ...(p.processAccounting ? ['acct'] : []),
    // aideinit, Debian's aide.conf and the daily check timer are in aide-common, which Debian 12's aide only
    // Recommends: packages install without recommends, so it is named here (without it aideinit is missing).
    ...(p.fileIntegrity ? ['aide', 'aide-common'] : []),
    ...p.tools,
  ],

  facts: (p) => [
    containerFact(), appArmorFact(), tmpMountFact(),
    writableSysctlsFact(sysctlKeys(p)),
    // Read with the rest: which keys get a sysctl resource depends on the fact above, and a converged host stays one round trip.
    ...sysctlKeys(p).map((key) => sysctlFact(key)),
    ...(p.filePermissions ? [...privateFiles, ...privateDirs].map(modeFact) : []),
    ...(p.privateHomes ? [homesFact()] : []),
    ...(p.fileIntegrity ? [aideDbFact()] : []),
    commonAuth, commonAccount, commonSession, fileFact(paths.auditRules), fileFact(paths.pamFaillock), fileFact(paths.pamFaillockFail), fileFact(paths.pamUmask), fileFact(paths.loginDefs),
  ],

  resources(facts, p, { templates }) {
    const container = inContainer(facts);
    const out: Resource[] = [];

    const settings = sysctlSettings(p);
    if (settings.length) {
      const canWrite = writable(facts, settings.map(([k]) => k));
      out.push(file(paths.sysctl, templates.render('baseline/sysctl.conf', { settings: settings.map(([key, value]) => ({ key, value })) }), {
        validate: sysctlCheck, whyMissing: 'the kernel hardening parameters are not persisted for boot',
      }));
      // A key this host may not write (a container's /proc/sys) is the host kernel's to decide: persisted, not forced.
      for (const [key, value] of settings) if (canWrite.has(key)) out.push(sysctl(key, value));
    }

    if (p.blacklistModules.length) {
      out.push(file(paths.modprobe, templates.render('baseline/modprobe.conf', { modules: [...new Set(p.blacklistModules)] }), {
        whyMissing: `${p.blacklistModules.join(', ')} may be loaded on demand`,
      }));
    }

    if (p.coreDumps) {
      out.push(file(paths.limits, templates.render('baseline/limits-coredump.conf', {}), { whyMissing: 'processes may write core dumps' }));
      out.push(directory(paths.coredumpDir));
      out.push(file(paths.coredump, templates.render('baseline/coredump.conf', {}), { whyMissing: 'systemd-coredump stores core dumps' }));
    }

    if (p.auditd) {
      const rules = templates.render('baseline/audit.rules', {});
      const current = facts.get(fileFact(paths.auditRules));
      const stale = current.content !== String(rules.text);
      out.push(file(paths.auditRules, rules, { mode: 0o640, whyMissing: 'auditd records nothing beyond its defaults' }));
      // The running rules follow the file; auditd cannot run in a container, where they load at the next boot of a real host.
      out.push(command('augenrules', stale && !container ? `${paths.auditRules} changed: the kernel's audit rules must be reloaded` : null, { argv: ['augenrules', '--load'] }, { describe: 'the audit rules are loaded' }));
      out.push(service('auditd.service', { enabled: true, running: !container }));
    }

    if (p.apparmor && hasAppArmor(facts)) {
      out.push(packages(['apparmor'], { why: 'the kernel has AppArmor but the profiles are not loaded (apparmor not installed)' }));
      out.push(service('apparmor.service', { enabled: true, running: !container }));
    }

    if (p.loginDefs) {
      const block = templates.render('baseline/login.defs', { passMaxDays: p.passMaxDays, passMinDays: p.passMinDays, passWarnAge: p.passWarnAge, umask: p.umask });
      const content: Content = { text: loginDefsWith(facts.get(fileFact(paths.loginDefs)).content, String(block.text)), ...(block.source ? { source: block.source } : {}) };
      out.push(file(paths.loginDefs, content, { whyDiffers: `${paths.loginDefs} lacks the password aging and UMASK ${p.umask} of the baseline` }));
    }

    if (p.passwordQuality) {
      out.push(directory(paths.pwqualityDir));
      out.push(file(paths.pwquality, templates.render('baseline/pwquality.conf', { minlen: p.minPasswordLength }), { whyMissing: 'passwords are not checked for length and variety' }));
      out.push(file(paths.faillock, templates.render('baseline/faillock.conf', { deny: p.faillockDeny, interval: 900, unlockTime: p.faillockUnlockTime }), { whyDiffers: `${paths.faillock} does not lock accounts after ${p.faillockDeny} failures` }));
    }

    out.push(...pamProfiles(facts, p, templates));

    if (p.sudoLogging) {
      out.push(file(paths.sudoers, templates.render('baseline/sudo-logging', { logfile: p.sudoLogfile }), {
        mode: 0o440, validate: { argv: ['visudo', '-cf', '{}'] }, whyMissing: 'sudo neither logs commands to a file nor runs them in a pseudo-terminal',
      }));
      out.push(file(paths.sudoRotate, templates.render('baseline/logrotate-sudo', { logfile: p.sudoLogfile }), { whyMissing: `${p.sudoLogfile} would grow without bound` }));
    }

    if (p.journald) {
      out.push(directory(paths.journaldDir));
      out.push(file(paths.journald, templates.render('baseline/journald.conf', { maxUse: p.journalMaxUse }), {
        notify: [{ unit: 'systemd-journald.service', op: 'restart' }], whyMissing: 'the journal is neither persistent nor bounded by zanuri',
      }));
    }

    if (p.logrotate) out.push(packages(['logrotate']));

    if (p.tmp && tmpState(facts) === 'not-mounted') {
      out.push(file(paths.tmpMount, templates.render('baseline/tmp.mount', { size: p.tmpSize }), { whyMissing: '/tmp is part of the root filesystem, without nosuid,nodev' }));
      // Enabled for the next boot; started now it would hide the files running services keep in /tmp.
      out.push(service('tmp.mount', { enabled: true, running: false }));
    }

    if (p.banner !== null) {
      const issue = templates.render('baseline/issue', { banner: p.banner });
      out.push(file('/etc/issue', issue, { whyDiffers: '/etc/issue carries no legal notice' }));
      out.push(file('/etc/issue.net', issue, { whyDiffers: '/etc/issue.net carries no legal notice' }));
    }

    if (p.filePermissions) {
      for (const path of privateFiles) out.push(...restrict(facts, path, '600'));
      for (const path of privateDirs) out.push(...restrict(facts, path, '700'));
    }

    if (p.processAccounting) out.push(service('acct.service', { enabled: true, running: !container }));

    if (p.tools.includes('needrestart')) {
      out.push(directory('/etc/needrestart/conf.d'));
      out.push(file(paths.needrestart, templates.render('baseline/needrestart.conf', {}), { whyMissing: 'needrestart would restart services during apt runs' }));
    }

    if (p.coreDumps || p.shellTimeout > 0) {
      out.push(file(paths.profile, templates.render('baseline/profile.sh', { timeout: p.shellTimeout > 0 ? p.shellTimeout : null }), { whyMissing: 'login shells may dump core and idle shells stay open' }));
    }

    if (p.fileIntegrity) {
      // A database once; the daily timer compares against it. Updating it after changes is the operator's call (aide --update).
      const hasDb = facts.get(aideDbFact()).exitCode === 0;
      out.push(command('aideinit', hasDb ? null : 'AIDE has no database of the installed files yet', { argv: ['aideinit', '--yes', '--force'] }, {
        describe: 'AIDE has its database', undo: { argv: ['rm', '-f', '--', paths.aideDb] },
      }));
    }

    if (p.privateHomes) {
      for (const { path, mode } of parseHomes(facts.get(homesFact()).stdout)) {
        // Group and others lose write and, for others, everything: 0755 -> 0750, 0700 stays.
        const wanted = (mode & 0o750).toString(8);
        if (wanted !== mode.toString(8)) {
          out.push(command(`chmod:${path}`, `${path} is mode ${mode.toString(8)}: other users can read it`, { argv: ['chmod', wanted, '--', path] }, {
            describe: `${path} is mode ${wanted}`, undo: { argv: ['chmod', mode.toString(8), '--', path] },
          }));
        }
      }
    }
    return out;
  },

  converged(p, facts) {
    const notes: string[] = [];
    const settings = sysctlSettings(p);
    const readOnly = settings.length - writable(facts, settings.map(([k]) => k)).size;
    if (readOnly > 0) notes.push(`${readOnly} kernel parameter(s) are read-only here (a container: the host's kernel decides them) and are set at boot from ${paths.sysctl}`);
    if (inContainer(facts) && p.auditd) notes.push('auditd is enabled; in a container it cannot run, so it is not started');
    if (p.tmp && tmpState(facts) === 'hardened') notes.push('/tmp is already its own mount with nosuid,nodev');
    if (p.tmp && tmpState(facts) === 'mount-lacks') notes.push('/tmp is its own mount without nosuid,nodev: fix its /etc/fstab line (zanuri does not edit fstab)');
    if (p.apparmor && !hasAppArmor(facts)) notes.push('the kernel has no AppArmor');
    return `the baseline hardening is in place${notes.length ? ` (${notes.join('; ')})` : ''}`;
  },
});

function sysctlSettings(p: { sysctl: boolean; coreDumps: boolean }): Array<readonly [string, string]> {
  return [...(p.sysctl ? hardeningSysctls : []), ...(p.coreDumps ? [coreDumpSysctl] : [])];
}
function sysctlKeys(p: { sysctl: boolean; coreDumps: boolean }): string[] {
  return sysctlSettings(p).map(([k]) => k);
}

const aideDbFact = () => commandFact(['test', '-s', paths.aideDb]);

/** Home directories of regular users (uid 1000-65533) that exist under /home, with their modes. */
const homesScript = 'getent passwd | while IFS=: read -r n x uid gid g home sh; do case "$home" in /home/*) [ "$uid" -ge 1000 ] && [ "$uid" -lt 65534 ] && [ -d "$home" ] && [ ! -L "$home" ] && stat -c \'%a %n\' -- "$home";; esac; done; true';
export const homesFact = () => commandFact(['sh', '-c', homesScript, 'zanuri-homes']);
export function parseHomes(output: string): Array<{ path: string; mode: number }> {
  const homes: Array<{ path: string; mode: number }> = [];
  for (const line of output.split('\n')) {
    const m = /^([0-7]{3,4}) (\/home\/\S+)$/.exec(line.trim());
    if (m) homes.push({ path: m[2] as string, mode: parseInt(m[1] as string, 8) });
  }
  return homes;
}

/** chmod an existing path to `mode`, with the old mode as undo; nothing for a path that does not exist. */
function restrict(facts: FactValues, path: string, mode: string): Resource[] {
  const current = facts.get(modeFact(path));
  if (current.exitCode !== 0) return [];
  const now = current.stdout.trim();
  return [command(`chmod:${path}`, now === mode ? null : `${path} is mode ${now}, not ${mode}`, { argv: ['chmod', mode, '--', path] }, {
    describe: `${path} is mode ${mode}`, undo: { argv: ['chmod', now, '--', path] },
  })];
}
