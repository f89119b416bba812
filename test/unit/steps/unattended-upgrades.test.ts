import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import { pendingUpdatesFact } from '../../../src/facts/audit.js';
import { fileFact, osReleaseFact, serviceFact } from '../../../src/facts/state.js';
import { planStep } from '../../../src/steps/plan.js';
import type { PlanContext } from '../../../src/steps/types.js';
import { defaultHoldPatterns, globToRegex, installableSecurityUpdates, parseAptShell, periodicPath, staleListsSeconds, unattendedUpgrades, zanuriPath } from '../../../src/steps/unattended-upgrades.js';
import { loadTemplates } from '../../../src/templates/load.js';
import { b64, factsOf } from './facts-of.js';

let ctx: PlanContext;
beforeAll(async () => {
  ctx = { loginUser: 'root', sshPort: 22, local: false, templates: await loadTemplates(), served: [] };
});
const defaults = unattendedUpgrades.parseParams({});
/** /etc/os-release of Debian 12 and Ubuntu 22.04 (trimmed to the fields read). */
const debian = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';
const ubuntu = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=jammy\n';
const rocky = 'ID="rocky"\nID_LIKE="rhel centos fedora"\n';
/** Exactly what Debian's unattended-upgrades writes when asked to enable itself. */
const packageWritten = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n';
const present = (content: string, attributes = '644 root root'): string => `present ${attributes}\n${b64(content)}`;

interface Host { os?: string; periodic?: string; zanuri?: string; daily?: string; updates?: string }
function planFor(host: Host, p = defaults): Plan {
  return planStep(unattendedUpgrades, factsOf([
    [osReleaseFact(), host.os ?? debian],
    [fileFact(periodicPath), host.periodic ?? 'absent'],
    [fileFact(zanuriPath), host.zanuri ?? 'absent'],
    [serviceFact('apt-daily.timer'), host.daily ?? 'enabled\nactive'],
    [serviceFact('apt-daily-upgrade.timer'), 'enabled\nactive'],
    ...(p.upgradeNow ? [[pendingUpdatesFact(), host.updates ?? ''] as [typeof pendingUpdatesFact extends () => infer R ? R : never, string]] : []),
  ]), p, ctx);
}
/** The content the step writes to `path` on a fresh host of this distribution. */
function rendered(path: string, os = debian, p = defaults): string {
  const put = planFor({ os }, p).actions.find((a) => a.kind === 'put' && a.path === path);
  if (!put || put.kind !== 'put') throw new Error(`no put of ${path}`);
  return String(put.content);
}

describe('unattended-upgrades parameters', () => {
  it('hold the NVIDIA driver and CUDA packages and take security updates only by default', () => {
    expect(defaults).toEqual({ securityOnly: true, holdPatterns: defaultHoldPatterns, automaticReboot: false, rebootTime: '03:30', rebootWithUsers: false, upgradeNow: false });
    expect(defaultHoldPatterns).toEqual(expect.arrayContaining(['nvidia-*', 'libnvidia-*', 'cuda-*', 'libcuda*']));
  });

  it('refuse hostile or overbroad patterns before any connection', () => {
    for (const bad of ['a;reboot', '$(id)', '`id`', 'x"y', 'nvidia-*";\nUnattended-Upgrade::Allowed-Origins {"', 'a b', '', '*', '.*', 'Nvidia-*']) {
      expect(() => unattendedUpgrades.parseParams({ holdPatterns: [bad] }), JSON.stringify(bad)).toThrow(/holdPatterns\[0\] must be a package name glob/);
    }
    expect(() => unattendedUpgrades.parseParams({ holdPatterns: ['ok-*', 'li*'] })).toThrow(/holdPatterns\[1\] "li\*" would hold back too much/);
    expect(() => unattendedUpgrades.parseParams({ holdPatterns: 'nvidia-*' })).toThrow(/holdPatterns must be a list/);
    expect(() => unattendedUpgrades.parseParams({ securityOnly: 'yes' })).toThrow(/securityOnly must be true or false/);
  });
});

describe('unattended-upgrades files', () => {
  it('turn globs into start-anchored Python regexes without backslashes', () => {
    expect(globToRegex('nvidia-*')).toBe('nvidia-.*');
    expect(globToRegex('libcuda*')).toBe('libcuda.*');
    expect(globToRegex('libstdc++6')).toBe('libstdc[+][+]6$');
    expect(globToRegex('cuda-12.4*')).toBe('cuda-12[.]4.*');
  });

  it('enable the daily runs with exactly the lines the package itself writes', () => {
    expect(rendered(periodicPath)).toBe(packageWritten);
  });

  it('clear the distribution origins and list only its security archive when securityOnly', () => {
    const deb = rendered(zanuriPath, debian);
    expect(deb).toContain('#clear Unattended-Upgrade::Origins-Pattern;\n');
    expect(deb).toContain('#clear Unattended-Upgrade::Allowed-Origins;\n');
    expect(deb).toContain('Unattended-Upgrade::Origins-Pattern {\n        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";\n};\n');
    expect(deb).not.toContain('Ubuntu');
    const ubu = rendered(zanuriPath, ubuntu);
    expect(ubu).toContain('"origin=Ubuntu,archive=${distro_codename}-security,label=Ubuntu";');
    expect(ubu).not.toContain('origin=Debian');
    expect(rendered(zanuriPath, rocky), 'a host of neither family gets both').toMatch(/origin=Debian[^]*origin=Ubuntu/);
  });

  it('keep the distribution origins and list each held glob once as a regex', () => {
    const all = rendered(zanuriPath, debian, unattendedUpgrades.parseParams({ securityOnly: false, holdPatterns: ['nvidia-*', 'libstdc++6'] }));
    expect(all).toBe([
      '// Managed by zanuri (unattended-upgrades); edits here are overwritten.',
      '// Origins: the distribution defaults of 50unattended-upgrades.',
      '// Held back from automatic upgrades (nvidia-* libstdc++6): a driver or CUDA upgrade needs a matching kernel module and a reboot.',
      'Unattended-Upgrade::Package-Blacklist {',
      '        "nvidia-.*";',
      '        "libstdc[+][+]6$";',
      '};',
      '// Kernel, glibc and OpenSSL fixes take effect only after a reboot (/var/run/reboot-required).',
      'Unattended-Upgrade::Automatic-Reboot "false";',
      'Unattended-Upgrade::Automatic-Reboot-WithUsers "false";',
      'Unattended-Upgrade::Automatic-Reboot-Time "03:30";',
      '',
    ].join('\n'));
    expect(rendered(zanuriPath, debian, unattendedUpgrades.parseParams({ holdPatterns: [] }))).not.toContain('Package-Blacklist');
  });

  it.skipIf(!hasAptConfig())('use apt.conf syntax that apt-config reads back: blacklist entries and periodic settings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-uu-'));
    writeFileSync(join(dir, 'a.conf'), rendered(zanuriPath) + rendered(periodicPath));
    const dump = execFileSync('apt-config', ['-c', join(dir, 'a.conf'), 'dump'], { encoding: 'utf8' });
    for (const glob of defaultHoldPatterns) expect(dump).toContain(`Unattended-Upgrade::Package-Blacklist:: "${globToRegex(glob)}";`);
    expect(dump).toContain('Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";');
    const shell = execFileSync('apt-config', ['-c', join(dir, 'a.conf'), 'shell', 'UU', 'APT::Periodic::Unattended-Upgrade'], { encoding: 'utf8' });
    expect(parseAptShell(shell)).toEqual({ UU: '1' });
  });
});

describe('unattended-upgrades plan', () => {
  it('writes both files from templates, each checked by apt-config on the staged copy and in place', () => {
    const plan = planFor({});
    expect(plan.actions).toHaveLength(2);
    const checked = { kind: 'put', mode: 0o644, owner: 'root', group: 'root', validate: { argv: ['apt-config', '-c', '{}', 'dump'] }, validateInPlace: { argv: ['apt-config', 'dump'] } };
    expect(plan.actions[0]).toMatchObject({ ...checked, path: periodicPath, source: 'template apt/20auto-upgrades', why: 'apt does not refresh its lists and run unattended-upgrade daily' });
    expect(plan.actions[1]).toMatchObject({ ...checked, path: zanuriPath, source: 'template apt/51zanuri-unattended-upgrades' });
  });

  it('leaves a converged host alone and says why, also when the package wrote 20auto-upgrades itself', () => {
    expect(planFor({ periodic: present(packageWritten), zanuri: present(rendered(zanuriPath)) })).toEqual({
      actions: [], noop: `unattended-upgrade runs daily (security updates only), holding ${defaultHoldPatterns.join(' ')}; never reboots by itself (zanuri check reports a pending reboot)`,
    });
  });

  it('reboots by itself only when asked, at the given time, and apt reads the policy back', () => {
    const p = unattendedUpgrades.parseParams({ automaticReboot: true, rebootTime: '04:15' });
    const text = rendered(zanuriPath, debian, p);
    expect(text).toContain('Unattended-Upgrade::Automatic-Reboot "true";\nUnattended-Upgrade::Automatic-Reboot-WithUsers "false";\nUnattended-Upgrade::Automatic-Reboot-Time "04:15";\n');
    expect(planFor({ periodic: present(packageWritten), zanuri: present(text) }, p)).toMatchObject({ noop: expect.stringMatching(/reboots by itself at 04:15 when an upgrade needs it$/) });
    for (const bad of ['4:15', '24:00', '03:30; reboot', 'now']) expect(() => unattendedUpgrades.parseParams({ rebootTime: bad }), bad).toThrow(/rebootTime must be a time of day HH:MM/);
    if (!hasAptConfig()) return;
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-uu-'));
    writeFileSync(join(dir, 'a.conf'), text);
    const shell = execFileSync('apt-config', ['-c', join(dir, 'a.conf'), 'shell', 'R', 'Unattended-Upgrade::Automatic-Reboot', 'T', 'Unattended-Upgrade::Automatic-Reboot-Time'], { encoding: 'utf8' });
    expect(parseAptShell(shell)).toEqual({ R: 'true', T: '04:15' });
  });

  it('rewrites a file switched off by hand, and turns the apt timers back on', () => {
    const plan = planFor({ periodic: present(packageWritten.replace('Unattended-Upgrade "1"', 'Unattended-Upgrade "0"')), zanuri: present(rendered(zanuriPath)), daily: 'disabled\ninactive' });
    expect(plan.actions).toEqual([
      expect.objectContaining({ kind: 'put', path: periodicPath, why: `${periodicPath} differs from the wanted settings` }),
      { kind: 'service', unit: 'apt-daily.timer', op: 'enable-now', why: 'apt-daily.timer is disabled and inactive' },
    ]);
  });

  it('gives a file with the right content but the wrong mode or owner back to root, 0644', () => {
    const plan = planFor({ periodic: present(packageWritten, '600 root root'), zanuri: present(rendered(zanuriPath), '644 deploy deploy') });
    expect(plan.actions).toEqual([
      expect.objectContaining({ kind: 'chmod', path: periodicPath, mode: 0o644, owner: 'root', group: 'root' }),
      expect.objectContaining({ kind: 'chmod', path: zanuriPath, mode: 0o644, owner: 'root', group: 'root' }),
    ]);
  });

  it('follows the distribution: an Ubuntu host gets the Ubuntu security origins', () => {
    const plan = planFor({ os: ubuntu, periodic: present(packageWritten), zanuri: present(rendered(zanuriPath, debian)) });
    expect(plan.actions).toEqual([expect.objectContaining({ path: zanuriPath, content: rendered(zanuriPath, ubuntu) })]);
  });
});

describe('apt-config shell output', () => {
  it('is read as NAME=value pairs', () => {
    expect(parseAptShell("LISTS='1'\nUU='0'\n")).toEqual({ LISTS: '1', UU: '0' });
    expect(parseAptShell('')).toEqual({});
  });
});

function hasAptConfig(): boolean {
  try {
    execFileSync('apt-config', ['dump'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * `apt-get -s upgrade` lines captured on a Debian 12 target built from the test rootfs (2026-12-01, after
 * apt-get update through the test proxy), plus one constructed NVIDIA line (no NVIDIA package is in that image).
 */
const capturedPending = [
  'Inst libssl3 [3.0.20-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])',
  'Inst openssl [3.0.20-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])',
  'Inst libpam0g [1.5.2-6+deb12u2] (1.5.2-6+deb12u3 Debian-Security:12/oldstable-security [amd64])',
  'Inst tzdata [2026b-0+deb12u1] (2026f-0+deb12u1 Debian-Security:12/oldstable-security [all])',
  'Inst nvidia-kernel-dkms [535.216.01-1~deb12u1] (535.247.01-1~deb12u1 Debian-Security:12/oldstable-security [amd64]) CONSTRUCTED',
].join('\n');
const updatesOutput = (inst: string, listsAgeSeconds: number): string =>
  `${inst}\n@apt 0\n@lists ${Math.floor(Date.now() / 1000) - listsAgeSeconds}\n@periodic v='1'\n@timer enabled\n@uu ii \n`;

describe('unattended-upgrades upgradeNow (pending updates from a captured simulation)', () => {
  const now = unattendedUpgrades.parseParams({ upgradeNow: true });
  const commandsOf = (plan: Plan): string[] => plan.actions.flatMap((a) => (a.kind === 'run' ? [a.cmd.argv.join(' ')] : []));

  it('refreshes the lists and runs unattended-upgrade once when security updates are pending, naming them and leaving the held ones out', () => {
    const plan = planFor({ periodic: present(packageWritten), zanuri: present(rendered(zanuriPath)), updates: updatesOutput(capturedPending, 60) }, now);
    expect(commandsOf(plan)).toEqual([expect.stringMatching(/ apt-get update /), 'unattended-upgrade']);
    const why = plan.actions.find((a) => a.kind === 'run' && a.cmd.argv[0] === 'unattended-upgrade')?.why ?? '';
    expect(why).toBe('4 security update(s) pending: libpam0g libssl3 openssl tzdata');
    expect(installableSecurityUpdates(pendingUpdatesFact().parse(updatesOutput(capturedPending, 60)), defaultHoldPatterns)).not.toContain('nvidia-kernel-dkms');
  });

  it('plans nothing when the fresh lists show no security update (the second run), but refreshes lists older than a day', () => {
    const converged = { periodic: present(packageWritten), zanuri: present(rendered(zanuriPath)) };
    expect(commandsOf(planFor({ ...converged, updates: updatesOutput('', 60) }, now))).toEqual([]);
    const stale = planFor({ ...converged, updates: updatesOutput('', staleListsSeconds + 3600) }, now);
    expect(stale.actions.map((a) => a.why)).toEqual([
      'the package lists are more than a day old: pending security updates are unknown',
      'the package lists are more than a day old: pending security updates are unknown',
    ]);
  });

  it('is off by default: nothing about pending updates is read or planned', () => {
    expect(unattendedUpgrades.facts?.(defaults, ctx).map((f) => f.key)).not.toContain(pendingUpdatesFact().key);
  });
});
