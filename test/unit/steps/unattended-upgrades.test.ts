import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileFact, serviceFact } from '../../../src/facts/state.js';
import {
  defaultHoldPatterns, familyOf, globToRegex, parseAptShell, periodicContent, periodicPath, renderConf, unattendedUpgrades, zanuriPath,
} from '../../../src/steps/unattended-upgrades.js';
import { b64, factsOf } from './facts-of.js';

const info = { loginUser: 'root', sshPort: 22, local: false };
const params = unattendedUpgrades.parseParams({});
/** /etc/os-release of Debian 12 and Ubuntu 22.04 (trimmed to the fields read). */
const debian = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';
const ubuntu = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=jammy\n';
const present = (content: string): string => `present 644 root root\n${b64(content)}`;
const timersOk: Array<[ReturnType<typeof serviceFact>, string]> = [[serviceFact('apt-daily.timer'), 'enabled\nactive'], [serviceFact('apt-daily-upgrade.timer'), 'enabled\nactive']];
const planFor = (files: { os?: string; periodic?: string; zanuri?: string }, timers = timersOk, p = params) => unattendedUpgrades.plan(factsOf([
  [fileFact('/etc/os-release'), files.os === undefined ? present(debian) : files.os],
  [fileFact(periodicPath), files.periodic ?? 'absent'],
  [fileFact(zanuriPath), files.zanuri ?? 'absent'],
  ...timers,
]), p, info);

describe('unattended-upgrades parameters', () => {
  it('holds the NVIDIA driver and CUDA packages and takes security updates only by default', () => {
    expect(params).toEqual({ securityOnly: true, holdPatterns: defaultHoldPatterns });
    expect(defaultHoldPatterns).toEqual(expect.arrayContaining(['nvidia-*', 'libnvidia-*', 'cuda-*', 'libcuda*']));
  });

  it('refuses hostile or overbroad patterns before any connection', () => {
    for (const bad of ['a;reboot', '$(id)', '`id`', 'x"y', 'nvidia-*";\nUnattended-Upgrade::Allowed-Origins {"', 'a b', '', '*', '.*', 'Nvidia-*']) {
      expect(() => unattendedUpgrades.parseParams({ holdPatterns: [bad] }), JSON.stringify(bad)).toThrow(/holdPatterns\[0\]/);
    }
    expect(() => unattendedUpgrades.parseParams({ holdPatterns: ['ok-*', 'li*'] })).toThrow(/holdPatterns\[1\].*too much/);
    expect(() => unattendedUpgrades.parseParams({ holdPatterns: 'nvidia-*' })).toThrow(/must be a list/);
    expect(() => unattendedUpgrades.parseParams({ securityOnly: 'yes' })).toThrow(/true or false/);
  });
});

describe('unattended-upgrades files', () => {
  it('turns globs into start-anchored Python regexes without backslashes', () => {
    expect(globToRegex('nvidia-*')).toBe('nvidia-.*');
    expect(globToRegex('libcuda*')).toBe('libcuda.*');
    expect(globToRegex('libstdc++6')).toBe('libstdc[+][+]6$');
    expect(globToRegex('cuda-12.4*')).toBe('cuda-12[.]4.*');
  });

  it('tells Debian, Ubuntu and their derivatives apart', () => {
    expect(familyOf(debian)).toBe('debian');
    expect(familyOf(ubuntu)).toBe('ubuntu');
    expect(familyOf('ID=linuxmint\nID_LIKE="ubuntu debian"\n')).toBe('ubuntu');
    expect(familyOf('ID="rocky"\nID_LIKE="rhel centos fedora"\n')).toBe('unknown');
    expect(familyOf(null)).toBe('unknown');
  });

  it('clears the distribution origins and lists only its security archive when securityOnly', () => {
    const deb = renderConf(params, 'debian');
    expect(deb).toContain('#clear Unattended-Upgrade::Origins-Pattern;\n');
    expect(deb).toContain('#clear Unattended-Upgrade::Allowed-Origins;\n');
    expect(deb).toContain('"origin=Debian,codename=${distro_codename}-security,label=Debian-Security";');
    expect(deb).not.toContain('Ubuntu');
    expect(renderConf(params, 'ubuntu')).toContain('"origin=Ubuntu,archive=${distro_codename}-security,label=Ubuntu";');
    expect(renderConf(params, 'unknown')).toMatch(/origin=Debian[^]*origin=Ubuntu/);
    const all = renderConf({ securityOnly: false, holdPatterns: ['nvidia-*'] }, 'debian');
    expect(all).not.toMatch(/#clear|Origins-Pattern/);
    expect(all).toContain('"nvidia-.*";');
  });

  it.skipIf(!hasAptConfig())('writes apt.conf syntax that apt-config reads back: blacklist entries and periodic settings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-uu-'));
    writeFileSync(join(dir, 'a.conf'), renderConf(params, 'debian') + periodicContent);
    const dump = execFileSync('apt-config', ['-c', join(dir, 'a.conf'), 'dump'], { encoding: 'utf8' });
    for (const glob of defaultHoldPatterns) expect(dump).toContain(`Unattended-Upgrade::Package-Blacklist:: "${globToRegex(glob)}";`);
    expect(dump).toContain('Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";');
    const shell = execFileSync('apt-config', ['-c', join(dir, 'a.conf'), 'shell', 'UU', 'APT::Periodic::Unattended-Upgrade'], { encoding: 'utf8' });
    expect(parseAptShell(shell)).toEqual({ UU: '1' });
  });
});

describe('unattended-upgrades plan', () => {
  it('writes both files, each checked by apt-config on the staged copy and in place', () => {
    const plan = planFor({});
    expect(plan.actions).toHaveLength(2);
    expect(plan.actions[0]).toMatchObject({ kind: 'put', path: '/etc/apt/apt.conf.d/20auto-upgrades', content: periodicContent, mode: 0o644 });
    expect(plan.actions[1]).toMatchObject({
      kind: 'put', path: '/etc/apt/apt.conf.d/51zanuri-unattended-upgrades', content: renderConf(params, 'debian'),
      validate: { argv: ['apt-config', '-c', '{}', 'dump'] }, validateInPlace: { argv: ['apt-config', 'dump'] },
    });
  });

  it('leaves a converged host alone and says why, also when the package wrote 20auto-upgrades itself', () => {
    expect(planFor({ periodic: present('APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'), zanuri: present(renderConf(params, 'debian')) })).toEqual({
      actions: [], noop: `unattended-upgrade runs daily (security updates only), holding ${defaultHoldPatterns.join(' ')}`,
    });
  });

  it('rewrites a file switched off by hand, and turns the apt timers back on', () => {
    const plan = planFor(
      { periodic: present('APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "0";\n'), zanuri: present(renderConf(params, 'debian')) },
      [[serviceFact('apt-daily.timer'), 'disabled\ninactive'], [serviceFact('apt-daily-upgrade.timer'), 'enabled\nactive']],
    );
    expect(plan.actions).toEqual([
      expect.objectContaining({ kind: 'put', path: periodicPath, why: `${periodicPath} differs from the wanted settings` }),
      { kind: 'service', unit: 'apt-daily.timer', op: 'enable-now', why: 'apt-daily.timer is disabled and inactive: the daily apt runs would not happen' },
    ]);
  });

  it('follows the distribution: an Ubuntu host gets the Ubuntu security origins', () => {
    const plan = planFor({ os: present(ubuntu), periodic: present(periodicContent), zanuri: present(renderConf(params, 'debian')) });
    expect(plan.actions).toEqual([expect.objectContaining({ path: zanuriPath, content: renderConf(params, 'ubuntu') })]);
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
