/**
 * zanuri audit: a host's security posture as findings. One source of truth with provision: every
 * rule that a step can fix IS that step's resource check. The profile's playbook is planned against
 * the host as a dry run (the same planning path, provisionHost with dryRun), and every planned
 * action becomes a finding naming the step and the resource. What no step declares (sockets against
 * the firewall, set-user-ID files outside the distribution's, accounts, pending updates, ...) are
 * audit-only rules over facts read in the same first round trip.
 */
import type { Templates } from '../core/content.js';
import { errorView } from '../core/errors.js';
import {
  accountsFact, auditFacts, fileScanFact, isLoopback, listenersFact, nvidiaPackagesFact, pendingUpdatesFact, publishedPortsFact,
  rebootRequiredFact, scanSeconds, securityServicesFact, ufwCovers, ufwStatusFact,
  type AccountState, type FileScan, type Listener, type NvidiaPackages, type PendingUpdates, type PublishedPort, type SecurityServices, type UfwState,
} from '../facts/audit.js';
import { postgresAccessFact, type PostgresCluster } from '../facts/postgresql-access.js';
import type { RebootFacts } from '../facts/types.js';
import { accessProblems, type AccessPolicy, type AccessProblemKind } from '../resources/postgresql-access.js';
import { parseSshdPorts, sshdConfigFact, sysctlFact, type CommandState, type FactRequest, type FactValues } from '../facts/state.js';
import { paths as baselinePaths, hardeningSysctls } from '../steps/baseline.js';
import { servedPorts } from '../steps/plan.js';
import type { ConnectOptions } from '../transport/connect.js';
import type { ActionView } from './actions.js';
import { provisionHost, type SelectedStep, type StepReport } from './provision.js';

export const severities = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof severities)[number];

export const severityRank = (s: Severity): number => severities.indexOf(s);

export interface Finding {
  /** Stable rule id: "step:<step>" for a step's resource, "audit:<rule>" for an audit-only rule. */
  rule: string;
  severity: Severity;
  title: string;
  /** What on the host shows it (a planned change's reason, the sockets, the files). Never file content. */
  evidence: string[];
  /** The provision step and parameter that fix it; null where no step does (remove the file, upgrade the package). */
  fix: { step: string; parameter: string | null; how: string } | null;
  /** The resource a step finding comes from (what provision would change). */
  resource?: string;
}

export interface HostAuditReport {
  host: string;
  target: string;
  ok: boolean;
  /** The steps judged (the profile's playbook) and what audit could not judge, and why. */
  steps: string[];
  notJudged: string[];
  findings: Finding[];
  /** 100 minus the weight of every finding, never below 0. */
  score: number;
  counts: Record<Severity, number>;
  roundTrips: number;
  durationMs: number;
  error?: { code: string; message: string; hint?: string; exitCode: number };
}

const weight: Record<Severity, number> = { info: 0, low: 1, medium: 4, high: 10, critical: 25 };

export function scoreOf(findings: readonly Finding[]): number {
  return Math.max(0, 100 - findings.reduce((n, f) => n + weight[f.severity], 0));
}

/** How much a step's unconverged resource matters: lockout-proof access and the firewall most. */
const stepSeverity: Record<string, Severity> = {
  'ssh-harden': 'high', ufw: 'high', 'docker-ufw': 'high', 'deploy-user': 'medium', fail2ban: 'medium',
  'unattended-upgrades': 'medium', baseline: 'medium', postgresql: 'medium', nginx: 'low', certbot: 'medium',
  timesync: 'low', docker: 'low', 'nvidia-driver': 'medium',
};

/** baseline's files and what turns each on: the parameter an operator sets. */
const baselineParameter: Array<[string, string]> = [
  [baselinePaths.sysctl, 'sysctl'], [baselinePaths.modprobe, 'blacklistModules'], [baselinePaths.limits, 'coreDumps'],
  [baselinePaths.coredumpDir, 'coreDumps'], [baselinePaths.coredump, 'coreDumps'], [baselinePaths.auditRules, 'auditd'], ['auditd', 'auditd'],
  ['apparmor', 'apparmor'], [baselinePaths.loginDefs, 'loginDefs'], [baselinePaths.pwqualityDir, 'passwordQuality'], [baselinePaths.pwquality, 'passwordQuality'],
  [baselinePaths.faillock, 'passwordQuality'], [baselinePaths.pamFaillock, 'passwordQuality'], [baselinePaths.pamFaillockFail, 'passwordQuality'], ['pam-auth-update', 'passwordQuality'],
  [baselinePaths.sudoers, 'sudoLogging'], [baselinePaths.sudoRotate, 'sudoLogging'], [baselinePaths.journaldDir, 'journald'], [baselinePaths.journald, 'journald'],
  [baselinePaths.tmpMount, 'tmp'], ['/etc/issue', 'banner'], ['acct', 'processAccounting'], ['/home/', 'privateHomes'], ['/etc/cron', 'filePermissions'],
  ['/etc/ssh/sshd_config', 'filePermissions'], ['sysctl -w', 'sysctl'], ['logrotate', 'logrotate'],
];

function parameterOf(step: string, action: ActionView): string | null {
  if (step !== 'baseline') return null;
  const text = `${action.summary} ${action.why}`;
  return baselineParameter.find(([needle]) => text.includes(needle))?.[1] ?? null;
}

/** What a planned action touches, for the finding's resource: its path, unit or command. */
function resourceOf(action: ActionView): string {
  const path = /(\/[^\s()]+)/.exec(action.summary)?.[1];
  if (action.kind === 'service') return `service:${action.summary.split(' ').at(-1) ?? ''}`;
  if (action.kind === 'packages') return `packages:${action.summary.replace(/^apt-get install /, '')}`;
  return path ? `${action.kind === 'link' ? 'link' : action.kind === 'directory' ? 'directory' : 'file'}:${path.replace(/\/$/, '')}` : `${action.kind}:${action.summary.slice(0, 60)}`;
}

/** Each planned action of a step that would change: a finding naming the step and the resource. */
export function stepFindings(reports: readonly StepReport[], selected: readonly SelectedStep[]): Finding[] {
  const findings: Finding[] = [];
  for (const report of reports) {
    if (report.status !== 'would-change') continue;
    if (report.id === 'packages') {
      // One finding per step whose packages are missing: the fix is that step.
      const missing = new Set(report.actions.flatMap((a) => a.summary.replace(/^apt-get install /, '').split(' ')));
      for (const s of selected) {
        const mine = (s.step.packages?.(s.params) ?? []).filter((p: string) => missing.has(p));
        if (!mine.length) continue;
        findings.push({
          rule: `step:${s.step.id}`, severity: stepSeverity[s.step.id] ?? 'medium', title: `${s.step.title}: ${mine.join(', ')} not installed`,
          evidence: [`dpkg: ${mine.join(', ')} not installed`], fix: { step: s.step.id, parameter: null, how: `zanuri provision --only ${s.step.id}` }, resource: `packages:${mine.join(',')}`,
        });
      }
      continue;
    }
    for (const action of report.actions) {
      const parameter = parameterOf(report.id, action);
      findings.push({
        rule: `step:${report.id}`, severity: stepSeverity[report.id] ?? 'medium', title: `${report.title}: ${action.why}`,
        evidence: [action.summary], resource: resourceOf(action),
        fix: { step: report.id, parameter, how: `zanuri provision --only ${report.id}${parameter ? ` (parameter ${report.id}.${parameter})` : ''}` },
      });
    }
  }
  return findings;
}

/** What audit-only rules know about the run: the selected steps and their parameters. */
export interface AuditContext {
  selected: readonly SelectedStep[];
  /** Ports the profile means to be reachable: the steps' served ports and ufw's parameters. */
  expected: { port: number; protocol: 'tcp' | 'udp'; why: string }[];
  selectedIds: ReadonlySet<string>;
  now: number;
}

export function auditContext(selected: readonly SelectedStep[], now = Date.now()): AuditContext {
  const expected: AuditContext['expected'] = servedPorts(selected).map((p) => ({ port: p.port, protocol: p.protocol, why: `${p.step}: ${p.why}` }));
  for (const s of selected) {
    if (s.step.id !== 'ufw' && s.step.id !== 'docker-ufw') continue;
    const params = s.params as Partial<Record<'allow' | 'internal' | 'admin', { port: number; protocol?: 'tcp' | 'udp' }[]>>;
    for (const key of ['allow', 'internal', 'admin'] as const) {
      for (const p of params[key] ?? []) expected.push({ port: p.port, protocol: p.protocol ?? 'tcp', why: `${s.step.id}.${key}` });
    }
  }
  return { selected, expected, selectedIds: new Set(selected.map((s) => s.step.id)), now };
}

const anyAddress = (address: string): boolean => address === '*' || address === '0.0.0.0' || address === '::' || address === '';

/** Who may reach a port through ufw: null when no rule lets anyone in (or ufw is down and nothing filters). */
function ufwSources(ufw: UfwState, port: number, protocol: 'tcp' | 'udp'): string[] | null {
  if (ufw.active !== true) return null;
  const sources = ufw.rules.filter((r) => (r.action === 'ALLOW' || r.action === 'LIMIT') && ufwCovers(r.to, port, protocol)).map((r) => r.from.replace(/\s*\(v6\)$/, ''));
  return sources.length ? [...new Set(sources)] : [];
}

/** Audit-only rules: what no step declares, judged from the audit facts. */
export function auditOnlyFindings(values: FactValues, ctx: AuditContext): { findings: Finding[]; notJudged: string[] } {
  const findings: Finding[] = [];
  const notJudged: string[] = [];
  const listeners = values.get<Listener[]>(listenersFact());
  const ufw = values.get<UfwState>(ufwStatusFact());
  const sshd = values.get<CommandState>(sshdConfigFact());
  const sshPorts = parseSshdPorts(sshd);
  const sel = ctx.selectedIds;

  // Sockets against the firewall: reachable from other hosts, and not something the profile opens.
  const expected = (port: number, protocol: 'tcp' | 'udp'): string | null =>
    sshPorts.includes(port) && protocol === 'tcp' ? 'sshd' : ctx.expected.find((e) => e.port === port && e.protocol === protocol)?.why ?? null;
  const reachable: string[] = [];
  for (const l of listeners) {
    if (isLoopback(l.address) || (l.protocol === 'udp' && (l.port === 68 || l.port === 546))) continue;
    if (l.process === 'docker-proxy') continue; // judged with the published ports below
    const where = `${l.protocol}/${l.port} on ${anyAddress(l.address) ? 'every address' : l.address} (${l.process ?? 'process unknown'})`;
    if (ufw.active !== true) {
      if (!expected(l.port, l.protocol)) reachable.push(`${where}: no firewall in front of it`);
      continue;
    }
    const sources = ufwSources(ufw, l.port, l.protocol) ?? [];
    if (sources.length && !expected(l.port, l.protocol)) reachable.push(`${where}: ufw lets in ${sources.join(', ')}`);
  }
  if (reachable.length) {
    findings.push({
      rule: 'audit:unexpected-listener', severity: 'medium', title: `${reachable.length} listening port(s) reachable from other hosts that the profile does not open`,
      evidence: reachable,
      fix: { step: 'ufw', parameter: 'allow', how: 'stop the service or bind it to 127.0.0.1; or, when it is meant to be reachable, name it in the profile\'s ports (ufw.allow / ufw.internal) and run the ufw step' },
    });
  }
  if (ufw.active !== true && !sel.has('ufw')) {
    findings.push({
      rule: 'audit:firewall', severity: 'high', title: ufw.active === null ? 'no ufw firewall installed' : 'the ufw firewall is inactive',
      evidence: [`ufw: ${ufw.active === null ? 'not installed' : 'Status: inactive'}`, `${listeners.filter((l) => !isLoopback(l.address)).length} socket(s) listen beyond loopback`],
      fix: { step: 'ufw', parameter: null, how: 'zanuri provision --only ufw' },
    });
  }

  // Published container ports: Docker's DNAT rules bypass ufw's INPUT chain.
  const published = values.get<PublishedPort[]>(publishedPortsFact()).filter((p) => !isLoopback(p.address));
  const dockerUfw = ctx.selected.find((s) => s.step.id === 'docker-ufw')?.params as { allow?: { port: number; protocol?: string }[]; internal?: { port: number; protocol?: string }[] } | undefined;
  const opened = (p: PublishedPort): boolean => [...(dockerUfw?.allow ?? []), ...(dockerUfw?.internal ?? [])].some((a) => a.port === p.port && (a.protocol ?? 'tcp') === p.protocol);
  const bypass = published.filter((p) => !opened(p));
  if (bypass.length) {
    findings.push({
      rule: 'audit:docker-published', severity: 'high', title: `${bypass.length} published container port(s) reachable past the firewall`,
      evidence: bypass.map((p) => `${p.container}: ${p.protocol}/${p.port} on ${anyAddress(p.address) ? 'every address' : p.address}${dockerUfw ? ', not in docker-ufw.allow/internal' : ' (Docker\'s DNAT rules bypass ufw)'}`),
      fix: { step: 'docker-ufw', parameter: 'allow', how: 'run the docker-ufw step (only the ports it names reach containers), or publish on 127.0.0.1' },
    });
  }

  // Set-user-ID files outside the distribution's packages; world-writable files.
  const scan = values.get<FileScan>(fileScanFact());
  if (!scan.complete) notJudged.push(`the file scan stopped at its ${scanSeconds} s deadline: the set-ID and world-writable lists may be partial`);
  if (scan.unpackagedSetId.length) {
    findings.push({
      rule: 'audit:setid-unpackaged', severity: 'high', title: `${scan.unpackagedSetId.length} set-user-ID or set-group-ID file(s) that no installed package owns`,
      evidence: scan.unpackagedSetId.slice(0, 20).map((f) => `${f.path} (mode ${f.mode}, owner ${f.owner})`),
      fix: null,
    });
  }
  if (scan.worldWritable.length) {
    findings.push({
      rule: 'audit:world-writable', severity: 'medium', title: `${scan.worldWritable.length} world-writable file(s) or directories without the sticky bit`,
      evidence: scan.worldWritable.slice(0, 20).map((f) => `${f.path} (${f.kind}, mode ${f.mode}, owner ${f.owner})`),
      fix: null,
    });
  }

  // Accounts: names only, read as root on the host.
  const accounts = values.get<AccountState>(accountsFact());
  if (!accounts.shadowRead) notJudged.push('/etc/shadow could not be read: empty passwords are judged from /etc/passwd only');
  if (accounts.emptyPassword.length) {
    findings.push({
      rule: 'audit:empty-password', severity: 'critical', title: `account(s) with an empty password: ${accounts.emptyPassword.join(', ')}`,
      evidence: accounts.emptyPassword.map((n) => `${n}: empty password field (the value itself is never read back)`),
      fix: null,
    });
  }
  if (accounts.uidZero.length) {
    findings.push({
      rule: 'audit:uid-zero', severity: 'critical', title: `account(s) besides root with UID 0: ${accounts.uidZero.join(', ')}`,
      evidence: accounts.uidZero.map((n) => `${n}: uid 0 in /etc/passwd`), fix: null,
    });
  }

  // Pending updates: the lists already on the host, nothing fetched.
  const updates = values.get<PendingUpdates>(pendingUpdatesFact());
  if (updates.all === null) notJudged.push('pending updates: apt-get could not simulate an upgrade');
  else if (updates.listsTime === null) notJudged.push('pending updates: the host has no package lists (apt-get update never ran), and audit fetches nothing');
  else if (updates.security.length) {
    const age = updates.listsTime === null ? 'no package lists' : `package lists from ${new Date(updates.listsTime * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
    findings.push({
      rule: 'audit:security-updates', severity: updates.unattended ? 'low' : 'high',
      title: `${updates.security.length} security update(s) pending${updates.unattended ? ' (unattended-upgrades installs them within a day)' : ' and nothing installs them automatically'}`,
      evidence: [`${updates.security.slice(0, 30).join(', ')}${updates.security.length > 30 ? ', ...' : ''}`, age],
      fix: { step: 'unattended-upgrades', parameter: null, how: updates.unattended ? 'wait for the next unattended-upgrades run, or apt-get upgrade now' : 'zanuri provision --only unattended-upgrades, and apt-get upgrade now' },
    });
  }
  const reboot = values.get<RebootFacts>(rebootRequiredFact());
  if (reboot.required) {
    findings.push({
      rule: 'audit:reboot-required', severity: 'medium', title: 'a reboot is pending: upgraded code does not run until then',
      evidence: [`/var/run/reboot-required${reboot.packages.length ? ` (${reboot.packages.join(', ')})` : ''}`],
      fix: { step: 'unattended-upgrades', parameter: 'automaticReboot', how: 'reboot in a maintenance window, or set unattended-upgrades.automaticReboot' },
    });
  }

  // Time, AppArmor, auditd: the timesync and baseline steps' business when selected (their resources judge them then).
  const services = values.get<SecurityServices>(securityServicesFact());
  if (!sel.has('timesync') && services.ntp === false && !services.container) {
    findings.push({ rule: 'audit:time-sync', severity: 'low', title: 'no time synchronisation (NTP off)', evidence: ['timedatectl: NTP=no'], fix: { step: 'timesync', parameter: 'daemon', how: 'zanuri provision --only timesync' } });
  }
  if (!sel.has('baseline')) {
    if (services.apparmorKernel === true && services.apparmor !== 'active' && !services.container) {
      findings.push({ rule: 'audit:apparmor', severity: 'medium', title: 'AppArmor profiles are not loaded', evidence: [`systemctl is-active apparmor: ${services.apparmor}`], fix: { step: 'baseline', parameter: 'apparmor', how: 'zanuri provision --only baseline' } });
    }
    if (services.auditd !== 'active' && !services.container) {
      findings.push({ rule: 'audit:auditd', severity: 'low', title: 'no audit trail (auditd not running)', evidence: [`systemctl is-active auditd: ${services.auditd}`], fix: { step: 'baseline', parameter: 'auditd', how: 'zanuri provision --only baseline' } });
    }
  }

  // sshd itself, when the profile does not harden it (ssh-harden's resources judge it otherwise).
  if (!sel.has('ssh-harden') && sshd.exitCode === 0) {
    const get = (key: string): string | undefined => sshd.stdout.match(new RegExp(`^${key} (.*)$`, 'm'))?.[1]?.trim();
    const weak: string[] = [];
    if (get('passwordauthentication') === 'yes') weak.push('passwordauthentication yes');
    if (get('permitrootlogin') === 'yes') weak.push('permitrootlogin yes');
    if (get('permitemptypasswords') === 'yes') weak.push('permitemptypasswords yes');
    if (weak.length) {
      findings.push({ rule: 'audit:sshd', severity: 'high', title: 'sshd lets passwords or root in', evidence: weak.map((w) => `sshd -T: ${w}`), fix: { step: 'ssh-harden', parameter: 'permitRootLogin', how: 'zanuri provision --only deploy-user,ssh-harden' } });
    }
  }

  findings.push(...postgresFindings(values.get<PostgresCluster[]>(postgresAccessFact()), ctx, notJudged));

  // NVIDIA driver packages that an upgrade could replace under running GPUs.
  const nvidia = values.get<NvidiaPackages>(nvidiaPackagesFact());
  const loose = nvidia.installed.filter((n) => !nvidia.held.includes(n));
  if (loose.length && !sel.has('nvidia-driver')) {
    findings.push({
      rule: 'audit:nvidia-hold', severity: 'medium', title: `${loose.length} NVIDIA driver package(s) not held: an upgrade can replace the driver under running GPUs`,
      evidence: loose.slice(0, 20), fix: { step: 'nvidia-driver', parameter: null, how: 'zanuri provision --only nvidia-driver (it holds the driver it keeps), or apt-mark hold' },
    });
  }
  return { findings, notJudged };
}

const postgresRules: Record<AccessProblemKind, { rule: string; title: (n: number) => string; parameter: string; how: string }> = {
  listen: {
    rule: 'audit:postgresql-listen', title: (n) => `PostgreSQL listens beyond loopback (${n} cluster${n === 1 ? '' : 's'}) and the profile does not say it should`, parameter: 'listenAddresses',
    how: 'zanuri provision --only postgresql (listen_addresses from postgresql.listenAddresses, localhost by default); name the addresses in the profile when remote clients are meant',
  },
  trust: {
    rule: 'audit:pg-hba-trust', title: (n) => `${n} pg_hba.conf row(s) let clients in without a password (trust)`, parameter: 'allowFrom',
    how: 'replace trust with peer (local) or scram-sha-256 in pg_hba.conf and reload; zanuri provision --only postgresql writes only peer and scram-sha-256 rows',
  },
  password: {
    rule: 'audit:pg-hba-password', title: (n) => `${n} pg_hba.conf row(s) take the password in clear text (password)`, parameter: 'allowFrom',
    how: 'use scram-sha-256 in those rows and reload (postgresql.allowFrom gives hostssl scram-sha-256 rows)',
  },
  md5: {
    rule: 'audit:pg-hba-md5', title: (n) => `${n} pg_hba.conf row(s) use md5 (a replayable hash; scram-sha-256 is not)`, parameter: 'allowFrom',
    how: 'set password_encryption = scram-sha-256, reset the roles\' passwords, use scram-sha-256 in those rows and reload',
  },
  'no-ssl': {
    rule: 'audit:pg-hba-no-ssl', title: (n) => `${n} pg_hba.conf row(s) accept other hosts without TLS (host, hostnossl)`, parameter: 'allowFrom',
    how: 'use hostssl for remote rows (postgresql.allowFrom writes hostssl rows and rejects the same networks without TLS)',
  },
  'any-address': {
    rule: 'audit:pg-hba-any-address', title: (n) => `${n} pg_hba.conf row(s) accept any address (0.0.0.0/0, ::/0, all)`, parameter: 'allowFrom',
    how: 'name the networks that need the database (postgresql.allowFrom) instead of any address',
  },
};

/** What the profile means PostgreSQL to be reachable from: the postgresql step's own parameters, masked as it writes them. */
function postgresPolicy(ctx: AuditContext): AccessPolicy {
  const p = ctx.selected.find((s) => s.step.id === 'postgresql')?.params as { listenAddresses?: string; allowFrom?: string[] } | undefined;
  const masked = (a: string): string => (a.includes('/') ? a : `${a}/${a.includes(':') ? 128 : 32}`);
  return { listen: (p?.listenAddresses ?? '').split(',').map((e) => e.trim()).filter(Boolean), allowFrom: (p?.allowFrom ?? []).map(masked) };
}

/**
 * PostgreSQL's listen scope and pg_hba rows, judged by the postgresql-access resource's own check
 * (accessProblems): one finding per kind, every row that shows it as evidence.
 */
export function postgresFindings(clusters: readonly PostgresCluster[], ctx: AuditContext, notJudged: string[] = []): Finding[] {
  for (const c of clusters) {
    if (c.hba === null) notJudged.push(`PostgreSQL ${c.version}/${c.name}: ${c.hbaPath || 'pg_hba.conf'} could not be read`);
    if (c.invalid.length) notJudged.push(`PostgreSQL ${c.version}/${c.name}: ${c.hbaPath} ${c.invalid.length === 1 ? 'line' : 'lines'} ${c.invalid.join(', ')} ${c.invalid.length === 1 ? 'is not a valid row' : 'are not valid rows'} (the server refuses to load the file)`);
  }
  const problems = accessProblems(clusters, postgresPolicy(ctx));
  const findings: Finding[] = [];
  for (const kind of Object.keys(postgresRules) as AccessProblemKind[]) {
    const mine = problems.filter((p) => p.kind === kind);
    if (!mine.length) continue;
    const rule = postgresRules[kind];
    const severity = mine.map((p) => p.severity).sort((a, b) => severityRank(b) - severityRank(a))[0] ?? 'medium';
    findings.push({
      rule: rule.rule, severity, title: rule.title(kind === 'listen' ? new Set(mine.map((p) => p.cluster)).size : mine.length),
      evidence: mine.slice(0, 20).map((p) => `${p.evidence} (${p.why})`),
      fix: { step: 'postgresql', parameter: rule.parameter, how: rule.how }, resource: 'postgresql-access',
    });
  }
  return findings;
}

export interface AuditOptions {
  connect: ConnectOptions;
  templates: Templates;
  /** Step findings to leave out, with why (the operator's keys were not given, so they are not judged). */
  ignore?: { rule: string; resource: RegExp; why: string }[];
  now?: number;
}

const countsOf = (findings: readonly Finding[]): Record<Severity, number> =>
  Object.fromEntries(severities.map((s) => [s, findings.filter((f) => f.severity === s).length])) as Record<Severity, number>;

/**
 * baseline declares a sysctl resource only for the keys its first facts show writable, so their own
 * facts would cost a second round trip: audit reads them in the first (a read of /proc/sys is cheap).
 */
const lateFacts = (selected: readonly SelectedStep[]): FactRequest<unknown>[] =>
  selected.some((s) => s.step.id === 'baseline') ? [...hardeningSysctls.map(([key]) => sysctlFact(key)), sysctlFact('fs.suid_dumpable')] : [];

/** Audits one host: the playbook as a dry run plus the audit-only facts, in the same first round trip. */
export async function auditHost(host: string | null, selected: readonly SelectedStep[], options: AuditOptions): Promise<HostAuditReport> {
  const started = performance.now();
  let values: FactValues | null = null;
  const report = await provisionHost(host, selected, {
    dryRun: true, connect: options.connect, templates: options.templates,
    // sshd -T is read by the sshd rule whether or not ssh-harden (which declares it too) is selected.
    extraFacts: [...auditFacts(), sshdConfigFact(), ...lateFacts(selected)], onFacts: (v) => { values = v; },
  });
  const base = {
    host: report.host, target: report.target, steps: selected.map((s) => s.step.id),
    roundTrips: report.roundTrips, durationMs: Math.round(performance.now() - started),
  };
  if (report.error || values === null) {
    const error = report.error ?? errorView(new Error('the host\'s facts were never read'));
    return { ...base, ok: false, notJudged: [], findings: [], score: 0, counts: countsOf([]), error };
  }
  const notJudged: string[] = [];
  for (const s of report.steps) {
    if (s.status === 'failed') notJudged.push(`${s.id}: ${s.why}`);
  }
  let findings = stepFindings(report.steps, selected);
  for (const rule of options.ignore ?? []) {
    findings = findings.filter((f) => !(f.rule === rule.rule && rule.resource.test(f.resource ?? '')));
    notJudged.push(rule.why);
  }
  const extra = auditOnlyFindings(values, auditContext(selected, options.now));
  findings = [...findings, ...extra.findings].sort((a, b) => severityRank(b.severity) - severityRank(a.severity));
  return { ...base, ok: true, notJudged: [...new Set([...notJudged, ...extra.notJudged])], findings, score: scoreOf(findings), counts: countsOf(findings) };
}

/** Is any finding at or above this severity? */
export const failsAt = (findings: readonly Finding[], threshold: Severity): boolean => findings.some((f) => severityRank(f.severity) >= severityRank(threshold));
