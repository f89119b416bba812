import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { auditContext, auditOnlyFindings, failsAt, scoreOf, stepFindings, type Finding } from '../../../src/engine/audit.js';
import type { SelectedStep, StepReport } from '../../../src/engine/provision.js';
import {
  accountsFact, auditFacts, fileScanFact, listenersFact, nvidiaPackagesFact, parseAccounts, parseFileScan, parseListeners, parseNvidiaPackages,
  parsePendingUpdates, parsePublished, parseSecurityServices, parseUfwStatus, pendingUpdatesFact, publishedPortsFact, rebootRequiredFact,
  securityServicesFact, ufwCovers, ufwStatusFact,
} from '../../../src/facts/audit.js';
import { sshdConfigFact, type FactRequest, type FactValues } from '../../../src/facts/state.js';
import { stepById } from '../../../src/steps/index.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/audit/${name}`, import.meta.url), 'utf8');
const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** Facts from captured outputs by request key; anything not given parses as empty output (tool missing). */
function factsFrom(outputs: Record<string, string>): FactValues {
  return { get: <T>(r: FactRequest<T>): T => r.parse(outputs[r.key] ?? '') };
}

async function select(id: string, params: Record<string, unknown> = {}): Promise<SelectedStep> {
  const step = await stepById(id);
  return { step, params: step.parseParams(params) };
}

describe('audit facts parse real captured output (Debian 12 targets)', () => {
  it('reads listening sockets from ss, with the process, once per address and port', () => {
    const listeners = parseListeners(fixture('listeners.debian12.txt'));
    expect(listeners).toEqual([
      { protocol: 'tcp', address: '0.0.0.0', port: 8089, process: 'perl' },
      { protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' },
      { protocol: 'tcp', address: '127.0.0.1', port: 40747, process: 'containerd' },
      { protocol: 'tcp', address: '::', port: 22, process: 'sshd' },
    ]);
  });

  it('reads ss lines with an interface suffix, udp and a wildcard address', () => {
    const text = 'udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=1,fd=1))\ntcp LISTEN 0 511 *:80 *:*\n';
    expect(parseListeners(b64(text))).toEqual([
      { protocol: 'udp', address: '127.0.0.53', port: 53, process: 'systemd-resolve' },
      { protocol: 'tcp', address: '*', port: 80, process: null },
    ]);
  });

  it('reads ufw status verbose: active, each rule with its ports and source', () => {
    const ufw = parseUfwStatus(fixture('ufw.debian12.txt'));
    expect(ufw.active).toBe(true);
    expect(ufw.rules).toContainEqual({ to: '5432/tcp', action: 'ALLOW', from: '10.0.0.0/8' });
    expect(ufw.rules).toContainEqual({ to: '2222/tcp', action: 'LIMIT', from: 'Anywhere' });
    expect(ufw.rules).toContainEqual({ to: '80,443/tcp (v6)', action: 'ALLOW', from: 'Anywhere (v6)' });
    expect(parseUfwStatus('')).toEqual({ active: null, rules: [] });
    expect(parseUfwStatus(b64('Status: inactive\n')).active).toBe(false);
  });

  it('knows which ports a ufw rule covers: lists, ranges, protocols, all ports', () => {
    expect(ufwCovers('80,443/tcp', 443, 'tcp')).toBe(true);
    expect(ufwCovers('80,443/tcp', 443, 'udp')).toBe(false);
    expect(ufwCovers('6000:6007/udp (v6)', 6003, 'udp')).toBe(true);
    expect(ufwCovers('6000:6007/udp', 6008, 'udp')).toBe(false);
    expect(ufwCovers('22', 22, 'udp')).toBe(true);
    expect(ufwCovers('Anywhere', 5432, 'tcp')).toBe(true);
  });

  it('reads a clean file scan and one with set-ID and world-writable files, any byte in a name', () => {
    expect(parseFileScan(fixture('file-scan.debian12.txt'))).toEqual({ unpackagedSetId: [], worldWritable: [], complete: true });
    const scan = parseFileScan(b64('S 4755 root /usr/local/bin/x\0Wf 666 root /etc/ww\nnewline\0Wd 777 nobody /srv/drop\0R 1\0'));
    expect(scan.unpackagedSetId).toEqual([{ path: '/usr/local/bin/x', mode: '4755', owner: 'root' }]);
    expect(scan.worldWritable.map((f) => [f.path, f.kind])).toEqual([['/etc/ww\nnewline', 'file'], ['/srv/drop', 'directory']]);
    expect(scan.complete).toBe(true);
    expect(parseFileScan(b64('S 4755 root /x\0R 124\0')).complete, 'the deadline cut it short').toBe(false);
    expect(parseFileScan(b64('S 4755 root /x\0')).complete, 'no exit status: cut at the size bound').toBe(false);
  });

  it('reads account names only: a clean target, then empty passwords and a second UID 0', () => {
    expect(parseAccounts(fixture('accounts.debian12.txt'))).toEqual({ emptyPassword: [], uidZero: [], shadowRead: true });
    expect(parseAccounts(b64('shadow\nE guest\nE guest\nU toor\n'))).toEqual({ emptyPassword: ['guest'], uidZero: ['toor'], shadowRead: true });
  });

  it('reads pending updates from apt-get -s: security ones by their origin, and a host without package lists', () => {
    const updates = parsePendingUpdates(fixture('updates.debian12.txt'));
    expect(updates.all).toHaveLength(17);
    expect(updates.security).toContain('libssl3');
    expect(updates.security).toContain('openssl');
    expect(updates.listsTime).toBeGreaterThan(1_600_000_000);
    expect(updates.unattended).toBe(false);
    const fresh = parsePendingUpdates(fixture('updates.debian12-fresh.txt'));
    expect(fresh).toEqual({ all: [], security: [], listsTime: null, unattended: false });
    expect(parsePendingUpdates('').all, 'no apt: unknown').toBeNull();
  });

  it('reads time sync, AppArmor and auditd as a container shows them', () => {
    expect(parseSecurityServices(fixture('services.debian12.txt'))).toEqual({
      ntp: false, synchronized: false, apparmorKernel: null, apparmor: 'inactive', auditd: 'inactive', container: true,
    });
  });

  it('reads no published ports from a host without containers, and the Ports column Docker documents', () => {
    expect(parsePublished(fixture('docker-published.debian12.txt'))).toEqual([]);
    const documented = parsePublished(b64('web\t0.0.0.0:8080->80/tcp, :::8080->80/tcp, 127.0.0.1:9000->9000/tcp\ndns\t0.0.0.0:53->53/udp\nidle\t80/tcp\n'));
    expect(documented).toEqual([
      { container: 'web', address: '0.0.0.0', port: 8080, protocol: 'tcp' },
      { container: 'web', address: '::', port: 8080, protocol: 'tcp' },
      { container: 'web', address: '127.0.0.1', port: 9000, protocol: 'tcp' },
      { container: 'dns', address: '0.0.0.0', port: 53, protocol: 'udp' },
    ]);
  });

  it('reads NVIDIA driver packages and which are held', () => {
    expect(parseNvidiaPackages(fixture('nvidia-packages.debian12.txt'))).toEqual({ installed: [], held: [] });
    expect(parseNvidiaPackages('nvidia-driver-535\thi \nlibnvidia-compute-535\tii \nnvidia-kernel-common\trc \n')).toEqual({
      installed: ['libnvidia-compute-535', 'nvidia-driver-535'], held: ['nvidia-driver-535'],
    });
  });

  it('reads every audit fact in one script, nothing a user controls in plain text, and never a password field', () => {
    const scripts = auditFacts().map((f) => f.script).join('\n');
    expect(scripts).not.toMatch(/print \$2|\$2 }/);
    for (const f of [listenersFact(), ufwStatusFact(), fileScanFact(), accountsFact(), publishedPortsFact()]) expect(f.script, f.key).toMatch(/base64/);
    expect(fileScanFact().script).toMatch(/timeout 30 find/);
  });
});

describe('audit rules', () => {
  it('turns each planned action of a step into a finding naming the step, the resource and the parameter', async () => {
    const baseline = await select('baseline');
    const ufw = await select('ufw');
    const reports: StepReport[] = [
      { id: 'packages', title: 'Packages', status: 'would-change', why: '', durationMs: 0, actions: [{ kind: 'packages', summary: 'apt-get install auditd ufw', why: 'auditd, ufw not installed' }] },
      { id: 'ufw', title: 'Firewall (ufw)', status: 'would-change', why: '', durationMs: 0, actions: [{ kind: 'run', summary: 'ufw --force enable', why: 'the firewall is inactive' }] },
      { id: 'baseline', title: 'Baseline hardening', status: 'would-change', why: '', durationMs: 0, actions: [{ kind: 'put', summary: 'create /etc/sysctl.d/60-zanuri-hardening.conf (root:root 0644)', why: 'the kernel hardening parameters are not persisted for boot' }] },
      { id: 'timesync', title: 'Time sync', status: 'unchanged', why: 'converged', durationMs: 0, actions: [] },
    ];
    const findings = stepFindings(reports, [baseline, ufw]);
    expect(findings.find((f) => f.resource === 'packages:ufw')).toMatchObject({ rule: 'step:ufw', severity: 'high', fix: { step: 'ufw' } });
    expect(findings.find((f) => f.resource === 'packages:auditd')).toMatchObject({ rule: 'step:baseline' });
    expect(findings.find((f) => f.title.includes('inactive'))).toMatchObject({ rule: 'step:ufw', severity: 'high' });
    expect(findings.find((f) => f.resource === 'file:/etc/sysctl.d/60-zanuri-hardening.conf')).toMatchObject({ rule: 'step:baseline', fix: { step: 'baseline', parameter: 'sysctl' } });
    expect(findings.some((f) => f.rule === 'step:timesync'), 'an unchanged step is no finding').toBe(false);
  });

  it('reports a listener the profile does not open, through the firewall or without one, and not sshd, loopback or a served port', async () => {
    const ctx = auditContext([await select('ufw', { allow: [{ port: 443 }] }), await select('nginx')]);
    const listeners = b64('tcp LISTEN 0 5 0.0.0.0:8089 0.0.0.0:* users:(("perl",pid=1,fd=3))\ntcp LISTEN 0 5 0.0.0.0:22 0.0.0.0:*\ntcp LISTEN 0 5 0.0.0.0:80 0.0.0.0:*\ntcp LISTEN 0 5 127.0.0.1:5432 0.0.0.0:*\n');
    const sshd = 'port 22\n\n@@rc=0';
    const open = auditOnlyFindings(factsFrom({ [listenersFact().key]: listeners, [sshdConfigFact().key]: sshd, [ufwStatusFact().key]: b64('Status: active\n\nTo  Action  From\n8089/tcp                   ALLOW IN    Anywhere\n') }), ctx);
    expect(open.findings.find((f) => f.rule === 'audit:unexpected-listener')?.evidence).toEqual(['tcp/8089 on every address (perl): ufw lets in Anywhere']);
    const closed = auditOnlyFindings(factsFrom({ [listenersFact().key]: listeners, [sshdConfigFact().key]: sshd, [ufwStatusFact().key]: b64('Status: active\n') }), ctx);
    expect(closed.findings.some((f) => f.rule === 'audit:unexpected-listener'), 'denied by the firewall: not reachable').toBe(false);
    const none = auditOnlyFindings(factsFrom({ [listenersFact().key]: listeners, [sshdConfigFact().key]: sshd }), ctx);
    expect(none.findings.find((f) => f.rule === 'audit:unexpected-listener')?.evidence).toEqual(['tcp/8089 on every address (perl): no firewall in front of it']);
    expect(none.findings.some((f) => f.rule === 'audit:firewall'), 'ufw is selected: its own resources report the missing firewall').toBe(false);
  });

  it('reports published container ports past the firewall unless docker-ufw opens them', async () => {
    const published = b64('web\t0.0.0.0:8080->80/tcp, 127.0.0.1:9000->9000/tcp\n');
    const without = auditOnlyFindings(factsFrom({ [publishedPortsFact().key]: published }), auditContext([await select('ufw')]));
    expect(without.findings.find((f) => f.rule === 'audit:docker-published')).toMatchObject({ severity: 'high', evidence: ['web: tcp/8080 on every address (Docker\'s DNAT rules bypass ufw)'] });
    const opened = auditOnlyFindings(factsFrom({ [publishedPortsFact().key]: published }), auditContext([await select('docker-ufw', { allow: [{ port: 8080 }] })]));
    expect(opened.findings.some((f) => f.rule === 'audit:docker-published')).toBe(false);
  });

  it('reports set-ID files, world-writable files, empty passwords and UID 0 with severities, pending security updates by who installs them', async () => {
    const ctx = auditContext([await select('ufw')]);
    const values = factsFrom({
      [fileScanFact().key]: b64('S 4755 root /usr/local/bin/x\0Wf 666 root /etc/ww\0R 0\0'),
      [accountsFact().key]: b64('shadow\nE guest\nU toor\n'),
      [pendingUpdatesFact().key]: fixture('updates.debian12.txt'),
      [rebootRequiredFact().key]: 'required\nlinux-image-6.1.0-18-amd64\n',
    });
    const { findings } = auditOnlyFindings(values, ctx);
    const by = (rule: string): Finding | undefined => findings.find((f) => f.rule === rule);
    expect(by('audit:setid-unpackaged')?.severity).toBe('high');
    expect(by('audit:world-writable')?.severity).toBe('medium');
    expect(by('audit:empty-password')?.severity).toBe('critical');
    expect(by('audit:uid-zero')?.title).toContain('toor');
    expect(by('audit:security-updates')).toMatchObject({ severity: 'high', fix: { step: 'unattended-upgrades' } });
    expect(by('audit:reboot-required')?.evidence[0]).toContain('linux-image-6.1.0-18-amd64');
    const automatic = fixture('updates.debian12.txt').replace('@periodic ', "@periodic v='1'").replace('@uu ', '@uu ii ');
    expect(auditOnlyFindings(factsFrom({ [pendingUpdatesFact().key]: automatic }), ctx).findings.find((f) => f.rule === 'audit:security-updates')?.severity).toBe('low');
    expect(auditOnlyFindings(factsFrom({ [pendingUpdatesFact().key]: fixture('updates.debian12-fresh.txt') }), ctx).notJudged.join('\n')).toMatch(/no package lists/);
  });

  it('judges sshd, time sync, AppArmor, auditd and the NVIDIA hold only when no selected step owns them', async () => {
    const weakSshd = 'port 22\npasswordauthentication yes\npermitrootlogin yes\n\n@@rc=0';
    const facts = factsFrom({
      [sshdConfigFact().key]: weakSshd,
      [securityServicesFact().key]: 'NTP=no\naa=Y\napparmor=inactive\nauditd=inactive\n',
      [nvidiaPackagesFact().key]: 'nvidia-driver-535\tii \n',
    });
    const bare = auditOnlyFindings(facts, auditContext([await select('ufw')])).findings.map((f) => f.rule);
    expect(bare).toEqual(expect.arrayContaining(['audit:sshd', 'audit:time-sync', 'audit:apparmor', 'audit:auditd', 'audit:nvidia-hold']));
    const owned = auditOnlyFindings(facts, auditContext([await select('ssh-harden'), await select('timesync'), await select('baseline')])).findings.map((f) => f.rule);
    expect(owned).not.toEqual(expect.arrayContaining(['audit:sshd']));
    expect(owned.filter((r) => ['audit:sshd', 'audit:time-sync', 'audit:apparmor', 'audit:auditd'].includes(r))).toEqual([]);
  });

  it('scores 100 minus the weight of each finding, and fails at or above the threshold', () => {
    const f = (severity: Finding['severity']): Finding => ({ rule: 'x', severity, title: '', evidence: [], fix: null });
    expect(scoreOf([])).toBe(100);
    expect(scoreOf([f('high'), f('medium'), f('low'), f('info')])).toBe(85);
    expect(scoreOf(Array.from({ length: 5 }, () => f('critical')))).toBe(0);
    expect(failsAt([f('medium')], 'medium')).toBe(true);
    expect(failsAt([f('medium')], 'high')).toBe(false);
    expect(failsAt([f('low')], 'info')).toBe(true);
  });
});
