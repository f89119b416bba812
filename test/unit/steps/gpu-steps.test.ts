/**
 * Plans of the GPU steps from captured real output (no GPU exists here): lspci of an HGX H100 with
 * NVSwitches, an HGX A100, an RTX 4090; nvidia-smi -q of an A100 on driver 525 and an H100 on 560;
 * mokutil's Secure Boot lines; Ubuntu's and Debian's os-release. Sources beside each file in
 * test/facts/gpu/ and test/facts/lspci/. The nvidia-state lines are composed in the fact script's own
 * format from the versions those captures show (marked where used).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Action, Plan } from '../../../src/core/plan.js';
import { parseNvidiaSmiQuery } from '../../../src/facts/gpu.js';
import type { FactRequest, FactValues } from '../../../src/facts/state.js';
import { chooseCuda, cudaToolkit } from '../../../src/steps/cuda-toolkit.js';
import { fabricManager } from '../../../src/steps/fabric-manager.js';
import { blacklistPath, nvidiaDriver } from '../../../src/steps/nvidia-driver.js';
import { armoredKey, parseCudaSources, parseNvidiaState, RefusedError } from '../../../src/steps/nvidia-shared.js';
import { planStep } from '../../../src/steps/plan.js';
import type { AnyStep } from '../../../src/steps/types.js';
import { b64, ctx } from './facts-of.js';

const fixture = (path: string): string => readFileSync(new URL(`../../facts/${path}`, import.meta.url), 'utf8');
const hgxH100 = fixture('lspci/hgx-h100-kvm-host-no-driver.lspci-Dnn-grep.txt');
const hgxA100 = fixture('gpu/a100-sxm4-80gb-hgx.lspci-nn.txt');
const rtx4090 = fixture('gpu/rtx-4090.lspci-nn.txt');
const noNvidia = fixture('lspci/zenbook-ux371-no-nvidia.lspci-nn.txt');
const ubuntu2204 = fixture('gpu/ubuntu-22.04.os-release');
const ubuntu2404 = fixture('gpu/ubuntu-24.04.os-release');
const debian12 = fixture('os/debian12.os-release');
const sbOn = fixture('gpu/mokutil-sb-state.enabled.txt');
const sbOff = fixture('gpu/mokutil-sb-state.disabled.txt');
const a100Driver = parseNvidiaSmiQuery(fixture('gpu/a100-sxm4-80gb.nvidia-smi-q.txt')).driverVersion as string; // 525.60.13
const h100Driver = parseNvidiaSmiQuery(fixture('gpu/h100-80gb-hbm3.nvidia-smi-q.txt')).driverVersion as string; // 560.35.03

const standinKey = ['-----BEGIN PGP PUBLIC KEY BLOCK-----', 'mDMEaw44fBYJKwYBBAHaRw8BAQdA2fIYmiXSoS7W5mOlzi6gS+TxO638zMittOa0', '=W2Wd', '-----END PGP PUBLIC KEY BLOCK-----'];

interface Host {
  os: string;
  lspci: string;
  sb?: string;
  /** nvidia-state fact lines (the fact script's format). */
  state?: string[];
  held?: string[];
  /** Outputs of other facts by key (files, packages, services). */
  extra?: Record<string, string>;
}

/** The host's facts: what the test gives, parsed by each request's own parser; anything else reads as on a bare host. */
function hostFacts(host: Host): FactValues {
  const outputs: Record<string, string> = {
    'os-release': host.os,
    'nvidia-pci': host.lspci,
    'secure-boot': host.sb ?? sbOff,
    'nvidia-state': (host.state ?? ['boot 1700000000', 'kernel 5.15.0-91-generic']).join('\n'),
    'held-packages': (host.held ?? []).join('\n'),
    'command:["uname","-m"]': 'x86_64\n@@rc=0',
    'command:["sh","-c","command -v update-initramfs"]': '/usr/sbin/update-initramfs\n@@rc=0',
    ...host.extra,
  };
  return { get: <T>(request: FactRequest<T>): T => request.parse(outputs[request.key] ?? '') };
}

const planFor = (step: AnyStep, host: Host, params: Record<string, unknown> = {}): Plan => planStep(step, hostFacts(host), step.parseParams(params), ctx);
const summaries = (plan: Plan): string[] => plan.actions.map((a) => (a.kind === 'packages' ? `install ${a.install.join(' ')}` : a.kind === 'run' ? a.cmd.argv.join(' ') : a.kind === 'put' ? `put ${a.path}` : a.kind === 'service' ? `${a.op} ${a.unit}` : a.kind));
const reasonOf = (plan: Plan, kind: Action['kind']): string | undefined => plan.actions.find((a) => a.kind === kind)?.why;

describe('captured-output plans: GPU steps on a host without an NVIDIA GPU', () => {
  it('skip with their reason, planning nothing (lspci of a laptop with Intel graphics only)', () => {
    for (const step of [nvidiaDriver, fabricManager, cudaToolkit] as AnyStep[]) {
      const plan = planFor(step, { os: ubuntu2404, lspci: noNvidia });
      expect(plan.actions).toEqual([]);
      expect('noop' in plan && plan.noop).toMatch(/^skipped: no (NVIDIA GPU|NVSwitch) on the PCI bus/);
    }
  });
});

describe('captured-output plans: HGX H100 SXM5 with 4 NVSwitches on Ubuntu 22.04 (lspci of a host with no driver yet)', () => {
  const host: Host = { os: ubuntu2204, lspci: hgxH100 };

  it('installs Canonical\'s signed prebuilt open modules for the GA kernel flavour, blacklists nouveau, rebuilds the initramfs, reboots, then enables the persistence daemon', () => {
    const plan = planFor(nvidiaDriver, host);
    expect(summaries(plan)).toEqual([
      'install linux-modules-nvidia-535-server-open-generic nvidia-compute-utils-535-server nvidia-headless-no-dkms-535-server-open nvidia-utils-535-server',
      'apt-mark hold -- linux-modules-nvidia-535-server-open-generic nvidia-compute-utils-535-server nvidia-headless-no-dkms-535-server-open nvidia-utils-535-server',
      `put ${blacklistPath}`,
      'update-initramfs -u',
      'reboot',
      'enable-now nvidia-persistenced.service',
    ]);
    expect(reasonOf(plan, 'packages')).toMatch(/open kernel modules: NVIDIA requires them from Blackwell and Grace Hopper on and recommends them for Hopper/);
    expect(reasonOf(plan, 'reboot')).toMatch(/^the new driver \(linux-modules-nvidia-535-server-open-generic, .*\) loads at the next boot$/);
  });

  it('with Secure Boot on plans the same: Canonical\'s modules are signed, no MOK needed (mokutil: SecureBoot enabled)', () => {
    expect(summaries(planFor(nvidiaDriver, { ...host, sb: sbOn }))).toEqual(summaries(planFor(nvidiaDriver, host)));
  });

  it('installs Fabric Manager of exactly the installed driver\'s version from Ubuntu\'s archive, held and running (4 NVSwitch bridges)', () => {
    const state = ['boot 1700000000', 'kernel 5.15.0-91-generic', 'loaded 535.183.01', 'pkg\thi \tnvidia-kernel-common-535-server\t535.183.01-0ubuntu0.22.04.1'];
    const plan = planFor(fabricManager, { ...host, state });
    expect(summaries(plan)).toEqual([
      'env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --allow-change-held-packages -- nvidia-fabricmanager-535=535.183.01-*',
      'install nvidia-fabricmanager-535',
      'apt-mark hold -- nvidia-fabricmanager-535',
      'enable-now nvidia-fabricmanager.service',
    ]);
    expect(plan.actions[0]?.why).toBe('nvidia-fabricmanager-535 is not installed: on an NVSwitch system CUDA cannot initialise without Fabric Manager of the driver\'s version (535.183.01)');
  });

  it('replaces a Fabric Manager whose version differs from the driver\'s', () => {
    const state = ['boot 1', 'kernel 5.15.0-91-generic', 'loaded 535.183.01', 'pkg\thi \tnvidia-kernel-common-535-server\t535.183.01-0ubuntu0.22.04.1', 'pkg\thi \tnvidia-fabricmanager-535\t535.161.08-0ubuntu0.22.04.1'];
    const plan = planFor(fabricManager, { ...host, state });
    expect(plan.actions[0]?.why).toBe('nvidia-fabricmanager-535 535.161.08 does not match driver 535.183.01: Fabric Manager must be exactly the driver\'s version');
  });

  it('bootstraps NVIDIA\'s CUDA repository with the shipped 3bf863cc key, then installs cuda-keyring as NVIDIA\'s guide does, then CUDA 12.1 (the minimum, before the lists are read), PATH in /etc/profile.d', () => {
    const plan = planFor(cudaToolkit, host);
    expect(summaries(plan)).toEqual([
      'put /etc/apt/keyrings/zanuri-nvidia-cuda.asc', 'put /etc/apt/sources.list.d/zanuri-nvidia-cuda.sources', 'env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300',
      'install cuda-keyring',
      'install cuda-toolkit-12-1', 'apt-mark hold -- cuda-toolkit-12-1', 'put /etc/profile.d/zanuri-cuda.sh',
    ]);
    const sources = plan.actions.find((a) => a.kind === 'put' && a.path.endsWith('.sources'));
    expect(sources?.kind === 'put' && sources.content).toContain('URIs: https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/\nSuites: /\nSigned-By: /etc/apt/keyrings/zanuri-nvidia-cuda.asc\n');
    const key = plan.actions.find((a) => a.kind === 'put' && a.path.endsWith('.asc'));
    expect(key?.kind === 'put' && key.content).toBe(fixture('../../templates/nvidia/cuda-archive-key.asc'));
    expect(reasonOf(plan, 'packages')).toMatch(/cuda-keyring is not installed: NVIDIA's guide installs it first; it carries the repository's key/);
  });

  it('takes a given repositoryKey instead of the shipped one (--set KEY=@file drops blank lines; the armor\'s blank line is put back)', () => {
    const plan = planFor(cudaToolkit, host, { repositoryKey: standinKey });
    const key = plan.actions.find((a) => a.kind === 'put' && a.path.endsWith('.asc'));
    expect(key?.kind === 'put' && key.content).toBe(`${standinKey[0]}\n\n${standinKey.slice(1).join('\n')}\n`);
  });

  const withKeyring = ['boot 1700000000', 'kernel 5.15.0-91-generic', 'pkg\tii \tcuda-keyring\t1.1-1'];
  const packageList = '/etc/apt/sources.list.d/cuda-ubuntu2204-x86_64.list\tdeb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/ /\n';
  const bootstrapFiles = {
    'file:/etc/apt/sources.list.d/zanuri-nvidia-cuda.sources': `present 644 root root\n${b64('Types: deb\n')}`,
    'file:/etc/apt/keyrings/zanuri-nvidia-cuda.asc': `present 644 root root\n${b64('key\n')}`,
  };

  it('once cuda-keyring is installed and its own source names the repository, removes the bootstrap source and key: apt never sees two Signed-By values for one repository', () => {
    const plan = planFor(cudaToolkit, { ...host, state: withKeyring, extra: { 'cuda-keyring-sources': packageList, ...bootstrapFiles } });
    expect(summaries(plan).slice(0, 3)).toEqual(['remove', 'remove', 'env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300']);
    expect(plan.actions.slice(0, 2).map((a) => (a.kind === 'remove' ? a.path : ''))).toEqual(['/etc/apt/sources.list.d/zanuri-nvidia-cuda.sources', '/etc/apt/keyrings/zanuri-nvidia-cuda.asc']);
    expect(plan.actions[0]?.why).toBe('/etc/apt/sources.list.d/cuda-ubuntu2204-x86_64.list (from cuda-keyring) names https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/: a second source for it would give apt two Signed-By values');
    // Converged: nothing of the repository left to do, and the step says whose source it is.
    const done = planFor(cudaToolkit, { ...host, state: withKeyring, extra: { 'cuda-keyring-sources': packageList } });
    expect(summaries(done)[0]).toBe('install cuda-toolkit-12-1');
  });

  it('with a mirror the cuda-keyring source does not name, keeps zanuri\'s source but trusts it through cuda-keyring\'s keyring, and drops the bootstrap key', () => {
    const mirror = 'http://mirror.example/cuda/ubuntu2204/x86_64/';
    const plan = planFor(cudaToolkit, { ...host, state: withKeyring, extra: { 'cuda-keyring-sources': packageList, ...bootstrapFiles } }, { repository: mirror });
    expect(summaries(plan).slice(0, 3)).toEqual(['remove', 'put /etc/apt/sources.list.d/zanuri-nvidia-cuda.sources', 'env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300']);
    const sources = plan.actions[1];
    expect(sources?.kind === 'put' && sources.content).toContain(`URIs: ${mirror}\nSuites: /\nSigned-By: /usr/share/keyrings/cuda-archive-keyring.gpg\n`);
  });
});

describe('the cuda-keyring sources fact', () => {
  it('reads one-line and deb822 sources that trust cuda-keyring\'s keyring, with their file', () => {
    expect(parseCudaSources([
      '/etc/apt/sources.list.d/cuda-debian12-x86_64.list\tdeb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/ /',
      '/etc/apt/sources.list.d/cuda-debian12-x86_64.list\t# a comment',
      '/etc/apt/sources.list.d/other.sources\tTypes: deb', '/etc/apt/sources.list.d/other.sources\tURIs: http://mirror.example/cuda/', '/etc/apt/sources.list.d/other.sources\tSigned-By: /usr/share/keyrings/cuda-archive-keyring.gpg',
      '',
    ].join('\n'))).toEqual([
      { file: '/etc/apt/sources.list.d/cuda-debian12-x86_64.list', url: 'https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/', signedBy: '/usr/share/keyrings/cuda-archive-keyring.gpg' },
      { file: '/etc/apt/sources.list.d/other.sources', url: 'http://mirror.example/cuda/', signedBy: '/usr/share/keyrings/cuda-archive-keyring.gpg' },
    ]);
    expect(parseCudaSources('')).toEqual([]);
  });
});

describe('captured-output plans: RTX 4090 on Ubuntu 24.04', () => {
  const host: Host = { os: ubuntu2404, lspci: rtx4090, state: ['boot 1700000000', 'kernel 6.8.0-45-generic'] };

  it('takes the proprietary modules on branch 535 and the open ones from branch 560 (NVIDIA\'s default for Ada from then)', () => {
    expect(summaries(planFor(nvidiaDriver, host))[0]).toBe('install linux-modules-nvidia-535-server-generic nvidia-compute-utils-535-server nvidia-headless-no-dkms-535-server nvidia-utils-535-server');
    expect(summaries(planFor(nvidiaDriver, host, { branch: 570 }))[0]).toBe('install linux-modules-nvidia-570-server-open-generic nvidia-compute-utils-570-server nvidia-headless-no-dkms-570-server-open nvidia-utils-570-server');
  });

  it('skips Fabric Manager: a single consumer card has no NVSwitch', () => {
    const plan = planFor(fabricManager, host);
    expect('noop' in plan && plan.noop).toMatch(/^skipped: no NVSwitch on the PCI bus/);
  });
});

describe('captured-output plans: HGX A100 on Debian 12', () => {
  const bare: Host = { os: debian12, lspci: hgxA100, state: ['boot 1700000000', 'kernel 6.1.0-18-amd64'] };

  it('installs Debian\'s non-free DKMS driver (branch 535) with the kernel headers, proprietary modules for Ampere on 535, then reboots', () => {
    const plan = planFor(nvidiaDriver, bare);
    expect(summaries(plan)).toEqual([
      'put /etc/apt/sources.list.d/zanuri-debian-non-free.sources', 'env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300',
      'install linux-headers-amd64',
      'install nvidia-driver nvidia-kernel-dkms nvidia-persistenced nvidia-smi', 'apt-mark hold -- nvidia-driver nvidia-kernel-dkms nvidia-persistenced nvidia-smi',
      `put ${blacklistPath}`, 'update-initramfs -u', 'reboot', 'enable-now nvidia-persistenced.service',
    ]);
    const sources = plan.actions[0];
    expect(sources?.kind === 'put' && sources.content).toContain('Suites: bookworm bookworm-updates\nComponents: contrib non-free non-free-firmware\n');
  });

  it('stops before any change when Secure Boot is on and DKMS would build unsigned modules, giving both ways forward (mokutil: SecureBoot enabled)', () => {
    let error: unknown;
    try { planFor(nvidiaDriver, { ...bare, sb: sbOn }); } catch (e) { error = e; }
    expect(error).toBeInstanceOf(RefusedError);
    const refused = error as RefusedError;
    expect(refused.message).toBe('nvidia-driver: Secure Boot is on and the debian route builds its kernel modules with DKMS on this host, unsigned by any key the firmware trusts: the kernel would refuse to load them. Nothing was changed.');
    expect(refused.hint).toMatch(/signed prebuilt modules .* or turn Secure Boot off/);
    expect(refused.hint).toMatch(/mokutil --import \/var\/lib\/dkms\/mok\.pub.*MokManager screen on the console.*Enroll MOK.*--set nvidia-driver\.secureBoot=mok-enrolled/);
    expect(refused.exitCode).toBe(6);
  });

  it('goes ahead with Secure Boot on once DKMS\'s key is an enrolled MOK, and refuses while it is not', () => {
    const params = { secureBoot: 'mok-enrolled' };
    const enrolled = { 'command:["mokutil","--test-key","/var/lib/dkms/mok.pub"]': '/var/lib/dkms/mok.pub is already enrolled\n@@rc=1' };
    expect(planFor(nvidiaDriver, { ...bare, sb: sbOn, extra: enrolled }, params).actions.length).toBeGreaterThan(0);
    const notYet = { 'command:["mokutil","--test-key","/var/lib/dkms/mok.pub"]': '/var/lib/dkms/mok.pub is not enrolled\n@@rc=0' };
    expect(() => planFor(nvidiaDriver, { ...bare, sb: sbOn, extra: notYet }, params)).toThrow(/is not an enrolled Machine Owner Key/);
  });

  // Driver 525.60.13 as the captured nvidia-smi -q of an A100 reports it; package lines composed in the fact's format.
  const older: Host = {
    ...bare,
    state: ['boot 1700000000', 'kernel 6.1.0-18-amd64', `loaded ${a100Driver}`, 'changed 1690000000 nvidia-kernel-dkms',
      `pkg\thi \tnvidia-kernel-dkms\t${a100Driver}-1`, `pkg\thi \tnvidia-driver\t${a100Driver}-1`, `pkg\thi \tlibnvidia-cfg1\t${a100Driver}-1`, `pkg\tii \tlibcuda1\t${a100Driver}-1`],
    held: ['libnvidia-cfg1', 'nvidia-driver', 'nvidia-kernel-dkms'],
    extra: {
      'packages:linux-headers-amd64': 'linux-headers-amd64\tii \t6.1.76-1\n',
      'packages:nvidia-driver,nvidia-kernel-dkms,nvidia-persistenced,nvidia-smi': `nvidia-driver\thi \t${a100Driver}-1\nnvidia-kernel-dkms\thi \t${a100Driver}-1\n`,
    },
  };

  it('upgrades an older driver (525, held) to branch 535: releases the old holds apt would trip on, upgrades in place, reboots', () => {
    const plan = planFor(nvidiaDriver, older);
    expect(summaries(plan)).toEqual([
      'apt-mark unhold -- libnvidia-cfg1',
      'put /etc/apt/sources.list.d/zanuri-debian-non-free.sources', 'env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300',
      'env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --allow-change-held-packages -- nvidia-kernel-dkms nvidia-driver',
      'install nvidia-persistenced nvidia-smi', 'apt-mark hold -- nvidia-persistenced nvidia-smi',
      `put ${blacklistPath}`, 'update-initramfs -u', 'reboot', 'enable-now nvidia-persistenced.service',
    ]);
    expect(plan.actions[0]?.why).toBe('driver 525.60.13 (branch 525) is older than branch 535: its held packages are released for the upgrade');
  });

  it('after the upgrade and before the reboot, reboots because the loaded module is the old one ("Driver/library version mismatch")', () => {
    const upgraded: Host = {
      ...older,
      state: ['boot 1700000000', 'kernel 6.1.0-18-amd64', `loaded ${a100Driver}`, 'changed 1700000500 nvidia-kernel-dkms',
        'pkg\thi \tnvidia-kernel-dkms\t535.216.01-1~deb12u1', 'pkg\thi \tnvidia-driver\t535.216.01-1~deb12u1', 'pkg\tii \tlibcuda1\t535.216.01-1~deb12u1'],
      held: ['nvidia-driver', 'nvidia-kernel-dkms', 'nvidia-persistenced', 'nvidia-smi'],
    };
    const plan = planFor(nvidiaDriver, upgraded);
    expect(reasonOf(plan, 'reboot')).toBe('driver 525.60.13 is loaded but 535.216.01 is installed: CUDA fails with "Driver/library version mismatch" until a reboot');
  });

  it('refuses a CUDA the driver cannot run: 13.0 needs driver 580 (CUDA 12.x >= 525, 13.x >= 580)', () => {
    expect(() => planFor(cudaToolkit, older, { minimum: '13.0', repositoryKey: standinKey })).toThrow(/the minimum CUDA 13\.0 cannot run on driver 525\.60\.13 \(branch 525\): CUDA 12\.x needs driver >= 525 and 13\.x >= 580/);
  });
});

describe('captured-output plans: a converged H100 host (driver 560.35.03 as its nvidia-smi -q reports)', () => {
  it('plans nothing and says why: the driver, held, nouveau blacklisted, the persistence daemon running', () => {
    const blacklist = ctx.templates.render('nvidia/blacklist-nouveau.conf', {}).text as string;
    const pkgs = ['linux-modules-nvidia-560-server-open-generic', 'nvidia-compute-utils-560-server', 'nvidia-headless-no-dkms-560-server-open', 'nvidia-utils-560-server'];
    const host: Host = {
      os: ubuntu2204, lspci: hgxH100, held: pkgs,
      state: ['boot 1700000000', 'kernel 5.15.0-91-generic', `loaded ${h100Driver}`, 'changed 1600000000 linux-modules-nvidia-560-server-open-generic',
        ...pkgs.map((p) => `pkg\thi \t${p}\t${p.startsWith('linux-') ? '5.15.0-91.101' : `${h100Driver}-0ubuntu0.22.04.1`}`)],
      extra: {
        [`packages:${pkgs.join(',')}`]: pkgs.map((p) => `${p}\thi \t1\n`).join(''),
        [`file:${blacklistPath}`]: `present 644 root root\n${b64(blacklist)}`,
        'service:nvidia-persistenced.service': 'enabled\nactive',
      },
    };
    const plan = planFor(nvidiaDriver, host, { branch: 560 });
    expect(plan.actions).toEqual([]);
    expect('noop' in plan && plan.noop).toBe('branch 560 by the ubuntu-signed route (linux-modules-nvidia-560-server-open-generic, nvidia-headless-no-dkms-560-server-open, nvidia-utils-560-server, nvidia-compute-utils-560-server), open kernel modules: NVIDIA requires them from Blackwell and Grace Hopper on and recommends them for Hopper, held; nouveau blacklisted; nvidia-persistenced enabled and running');
    // A branch lower than the installed one keeps what is there.
    const kept = planFor(nvidiaDriver, host, { branch: 535 });
    expect('noop' in kept && kept.noop).toMatch(/^driver 560\.35\.03 \(branch 560 >= 535\) installed and held/);
  });
});

describe('CUDA chosen from the driver', () => {
  const listed = [[13, 0], [12, 8], [12, 4], [11, 8]] as const;
  it('takes the newest toolkit the driver runs: 12.8 on 570, 13.0 on 580', () => {
    expect(chooseCuda({ minimum: '12.1', version: null }, 570, listed, 'driver 570.124.06').version).toEqual([12, 8]);
    expect(chooseCuda({ minimum: '12.1', version: null }, 580, listed, 'driver 580.65.06').version).toEqual([13, 0]);
  });
  it('refuses an exact version the driver cannot run, and one below the minimum', () => {
    expect(() => chooseCuda({ minimum: '12.1', version: '13.0' }, 535, listed, 'driver 535.216.01')).toThrow(/CUDA 13\.0 cannot run on driver 535\.216\.01/);
    expect(() => chooseCuda({ minimum: '12.1', version: '11.8' }, 535, listed, 'driver 535.216.01')).toThrow(/below the minimum 12\.1/);
  });
});

describe('GPU step parameters', () => {
  it('refuse a repositoryKey that is not one armored public key, before any connection', () => {
    for (const step of [nvidiaDriver, fabricManager, cudaToolkit] as AnyStep[]) {
      expect(() => step.parseParams({ repositoryKey: ['-----BEGIN PGP PRIVATE KEY BLOCK-----', 'x', '-----END PGP PRIVATE KEY BLOCK-----'] })).toThrow(/repositoryKey is not one ASCII-armored public key/);
      expect(() => step.parseParams({ repositoryKey: ['a', 'b\nc', 'd'] })).toThrow(/repositoryKey must be a null or a list/);
    }
    expect(armoredKey(['-----BEGIN PGP PUBLIC KEY BLOCK-----', 'Comment: x', 'abc', '-----END PGP PUBLIC KEY BLOCK-----'], 's')).toBe('-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: x\n\nabc\n-----END PGP PUBLIC KEY BLOCK-----');
  });
  it('refuse a repository URL that could reach a shell or a config line', () => {
    for (const bad of ['http://x/;reboot/', 'http://x/a b/', "http://x/'/", 'ftp://x/', 'http://x/a\n/', 'http://x/a']) {
      expect(() => nvidiaDriver.parseParams({ repository: bad })).toThrow(/repository must be/);
    }
  });
});

describe('the nvidia-state fact', () => {
  it('reads the boot time, the loaded version, nouveau, the newest module package change and held as well as installed packages', () => {
    const state = parseNvidiaState(['boot 1700000000', 'kernel 6.1.0-18-amd64', 'loaded 535.216.01', 'nouveau', 'changed 1690000000 nvidia-kernel-dkms', 'changed 1690000500 nvidia-kernel-dkms:amd64',
      'pkg\thi \tnvidia-kernel-dkms\t535.216.01-1~deb12u1', 'pkg\trc \tnvidia-driver\t525.60.13-1', 'pkg\tii \tlibcuda1\t535.216.01-1~deb12u1', ''].join('\n'));
    expect(state).toEqual({
      bootEpoch: 1700000000, kernel: '6.1.0-18-amd64', loaded: '535.216.01', nouveauLoaded: true,
      modulesChanged: { at: 1690000500, pkg: 'nvidia-kernel-dkms' },
      installed: [{ name: 'nvidia-kernel-dkms', version: '535.216.01-1~deb12u1' }, { name: 'libcuda1', version: '535.216.01-1~deb12u1' }],
      driverVersion: '535.216.01',
    });
    expect(parseNvidiaState('')).toMatchObject({ bootEpoch: null, loaded: null, installed: [], driverVersion: null });
  });
});

describe('unattended upgrades leave the driver alone', () => {
  it('hold Ubuntu\'s prebuilt module packages by default, which would otherwise leave a driver/library version mismatch', async () => {
    const { defaultHoldPatterns } = await import('../../../src/steps/unattended-upgrades.js');
    expect(defaultHoldPatterns).toEqual(expect.arrayContaining(['linux-modules-nvidia-*', 'linux-objects-nvidia-*', 'linux-signatures-nvidia-*', 'nvidia-*', 'libnvidia-*']));
  });
});

describe('GPU steps before any fact is read', () => {
  it('declare nothing on a blank host even when forced, so preflight and discovery never trip on a missing key', async () => {
    const { preflight } = await import('../../../src/engine/provision.js');
    const selected = ([nvidiaDriver, fabricManager, cudaToolkit] as AnyStep[]).map((step) => ({ step, params: step.parseParams({ force: true }) }));
    expect(() => preflight(selected, ctx.templates)).not.toThrow();
    for (const { step, params } of selected) expect(step.resources({ get: (r: FactRequest<unknown>) => r.parse('') } as FactValues, params, ctx)).toEqual([]);
  });
});

describe('the CUDA repository route locks the driver onto the profile\'s branch (NVIDIA\'s version locking for APT)', () => {
  const host: Host = { os: debian12, lspci: hgxA100, state: ['boot 1700000000', 'kernel 6.1.0-18-amd64', 'pkg\tii \tcuda-keyring\t1.1-1'], extra: { 'cuda-keyring-sources': '/etc/apt/sources.list.d/cuda-debian12-x86_64.list\tdeb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/ /\n' } };
  const installs = (plan: Plan): string[] => summaries(plan).filter((l) => l.startsWith('install '));

  it('from branch 575 installs nvidia-driver-pinning-<branch> before nvidia-open (open modules) or cuda-drivers (proprietary)', () => {
    expect(installs(planFor(nvidiaDriver, host, { branch: 580 }))).toEqual(['install linux-headers-amd64', 'install nvidia-driver-pinning-580', 'install nvidia-open']);
    expect(installs(planFor(nvidiaDriver, host, { branch: 580, modules: 'proprietary' }))).toEqual(['install linux-headers-amd64', 'install nvidia-driver-pinning-580', 'install cuda-drivers']);
    expect(reasonOf(planFor(nvidiaDriver, host, { branch: 580 }), 'packages')).toMatch(/linux-headers-amd64/);
    const pinWhy = planFor(nvidiaDriver, host, { branch: 580 }).actions.find((a) => a.kind === 'packages' && a.install.includes('nvidia-driver-pinning-580'))?.why;
    expect(pinWhy).toBe('nvidia-driver-pinning-580 is not installed: it locks apt onto branch 580 (NVIDIA\'s version locking), before the driver is installed');
  });

  it('before branch 575 takes the branch-named packages: nvidia-open-<branch> or cuda-drivers-<branch>, and holds them', () => {
    const plan = planFor(nvidiaDriver, host, { branch: 570 });
    expect(installs(plan)).toEqual(['install linux-headers-amd64', 'install nvidia-open-570']);
    expect(summaries(plan)).toContain('apt-mark hold -- nvidia-open-570');
    expect(installs(planFor(nvidiaDriver, host, { branch: 550, route: 'cuda-repo' }))).toEqual(['install linux-headers-amd64', 'install cuda-drivers-550']);
  });

  it('reads the driver version of an installed nvidia-open-<branch>', () => {
    expect(parseNvidiaState('pkg\tii \tnvidia-open-570\t570.124.06-1\n').driverVersion).toBe('570.124.06');
  });
});
