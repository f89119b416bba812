/**
 * The GPU steps on real targets (needs root). There is no GPU here, so:
 * - on a plain target every GPU step skips with its reason, dry run and real;
 * - forced (as an operator preparing a host before its card is fitted would), the driver, Fabric Manager
 *   and CUDA install from a STAND-IN of NVIDIA's CUDA repository: a signed apt repository the test
 *   builds with dpkg-deb, whose packages carry NVIDIA's names (cuda-keyring, nvidia-driver-pinning-580,
 *   nvidia-open, nvidia-fabricmanager-580, cuda-toolkit-13-0, ...) but hold small scripts. Repository,
 *   the hand-over to cuda-keyring's own source and keyring, the branch pin, hold and install run for real;
 * - the new driver makes the engine reboot the target (it boots again, as a machine would), wait,
 *   read the facts again and carry on; --no-reboot stops and leaves the reboot pending, and the next
 *   run says so;
 * - Debian 12's own non-free nvidia-driver (535, DKMS) installs for real once (about 7 minutes on 2 cores).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { BRIDGE_IP } from '../helpers/network.js';
import { fourCells, zanuriProvision, type ProvisionRun } from '../helpers/provision.js';
import { cudaKeyringStandin, startStandinRepo, type StandinPackage, type StandinRepo, type StandinRepoInfo } from '../helpers/standin-repo.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = (name: string): string => fileURLToPath(new URL(`./playbooks/${name}.yaml`, import.meta.url));

const unit = (description: string): [string, number] => [
  `[Unit]\nDescription=${description} (stand-in: fails without a GPU, as the real one does)\n[Service]\nExecStart=/bin/false\n[Install]\nWantedBy=multi-user.target\n`, 0o644,
];
const nvcc = (release: string, build: string): [string, number] => [
  `#!/bin/sh\n# stand-in for nvcc: prints what the real one prints for --version\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\necho 'Copyright (c) 2005-2025 NVIDIA Corporation'\necho 'Cuda compilation tools, release ${release}, V${build}'\n`, 0o755,
];

const pin580: [string, number] = ['# stand-in for NVIDIA\'s nvidia-driver-pinning-580: apt keeps the driver on branch 580\nPackage: nvidia-open cuda-drivers\nPin: version 580.*\nPin-Priority: 1000\n', 0o644];

/**
 * NVIDIA's package names, stand-in contents. cuda-keyring as the real one (key, its own apt source, pin file);
 * a 590 driver beside the 580 one, which only the pinning package keeps out; two Fabric Manager versions:
 * only the driver's own may be picked; CUDA 13.0 (needs 580) beside 12.8.
 */
const standins = (info: StandinRepoInfo): StandinPackage[] => [
  cudaKeyringStandin(info),
  { name: 'nvidia-driver-pinning-580', version: '580.65.06-1', files: { '/etc/apt/preferences.d/nvidia-driver-pinning-580': pin580 } },
  { name: 'nvidia-open', version: '580.65.06-1', files: { '/usr/lib/systemd/system/nvidia-persistenced.service': unit('NVIDIA Persistence Daemon') } },
  { name: 'nvidia-open', version: '590.44.01-1', files: { '/usr/lib/systemd/system/nvidia-persistenced.service': unit('NVIDIA Persistence Daemon') } },
  { name: 'nvidia-fabricmanager-580', version: '580.40.01-1', files: { '/usr/lib/systemd/system/nvidia-fabricmanager.service': unit('NVIDIA fabric manager service') } },
  { name: 'nvidia-fabricmanager-580', version: '580.65.06-1', files: { '/usr/lib/systemd/system/nvidia-fabricmanager.service': unit('NVIDIA fabric manager service') } },
  { name: 'cuda-toolkit-12-8', version: '12.8.1-1', files: { '/usr/local/cuda-12.8/bin/nvcc': nvcc('12.8', '12.8.93') } },
  { name: 'cuda-toolkit-13-0', version: '13.0.0-1', files: { '/usr/local/cuda-13.0/bin/nvcc': nvcc('13.0', '13.0.48') } },
];

const status = (run: ProvisionRun, id: string): string | undefined => run.host.steps.find((s) => s.id === id)?.status;
const why = (run: ProvisionRun, id: string): string => run.host.steps.find((s) => s.id === id)?.why ?? '';
type Report = ProvisionRun['host'] & { reboots?: { step: string; why: string }[]; rebootPending?: { step: string; why: string; since: string } };
const report = (run: ProvisionRun): Report => run.host as Report;

async function bootId(target: TestTarget): Promise<string> {
  return (await target.exec(['cat', '/proc/sys/kernel/random/boot_id'])).stdout.trim();
}

describe.skipIf(!can.ok && !process.env['CI'])('provision: GPU steps on real targets without a GPU (needs root)', () => {
  let target: TestTarget;
  let repo: StandinRepo;
  let standinArgs: string[];

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    repo = await startStandinRepo('cuda/debian12/x86_64', standins);
    const keyFile = join(mkdtempSync(join(tmpdir(), 'zanuri-gpu-')), 'standin-3bf863cc.pub');
    writeFileSync(keyFile, repo.keyArmored);
    const url = `${repo.url}/x86_64/`;
    standinArgs = ['nvidia-driver', 'fabric-manager', 'cuda-toolkit'].flatMap((step) => ['--set', `${step}.repository=${url}`, '--set', `${step}.repositoryKey=@${keyFile}`]);
    [target] = (await startTargets(1, { rebootable: true })) as [TestTarget];
    // The stand-in repository is on the bridge, not behind the apt proxy (which fetches only from Debian's mirror).
    const direct = await target.exec(['sh', '-c', `echo 'Acquire::http::Proxy::${BRIDGE_IP} "DIRECT";' > /etc/apt/apt.conf.d/02standin-direct`]);
    expect(direct.exitCode).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await stopAllTargets();
    await repo?.close();
  });

  it('skips every GPU step with its reason on a host without an NVIDIA GPU, in a dry run and a real one', async () => {
    for (const args of [['--dry-run'], []]) {
      const run = await zanuriProvision(target, ['--playbook', playbook('gpu-skip'), ...args]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.host.steps.map((s) => [s.id, s.status])).toEqual([['nvidia-driver', 'unchanged'], ['fabric-manager', 'unchanged'], ['cuda-toolkit', 'unchanged']]);
      expect(why(run, 'nvidia-driver')).toBe('skipped: no NVIDIA GPU on the PCI bus (vendor 10de, class 03xx): nothing to do (force: true installs anyway)');
      expect(why(run, 'fabric-manager')).toMatch(/^skipped: no NVSwitch on the PCI bus/);
      expect(why(run, 'cuda-toolkit')).toMatch(/^skipped: no NVIDIA GPU on the PCI bus/);
      expect(run.host.steps.every((s) => s.actions.length === 0)).toBe(true);
    }
    expect((await target.exec(['sh', '-c', 'ls /etc/apt/sources.list.d/ /etc/modprobe.d/'])).stdout).not.toMatch(/zanuri/);
  }, 120_000);

  it('installs cuda-keyring, the branch pin, the driver, Fabric Manager and CUDA from a stand-in NVIDIA repository: --no-reboot stops with the reboot pending, the next run says so, reboots, resumes and converges', async () => {
    const args = ['--playbook', playbook('gpu-standin-580'), ...standinArgs];
    const dry1 = await zanuriProvision(target, [...args, '--dry-run']);
    expect(dry1.code, dry1.stderr).toBe(0);
    expect(['nvidia-driver', 'fabric-manager', 'cuda-toolkit'].map((id) => status(dry1, id))).toEqual(['would-change', 'would-change', 'would-change']);
    const driverPlan = dry1.host.steps.find((s) => s.id === 'nvidia-driver')?.actions ?? [];
    expect(driverPlan.map((a) => a.kind)).toEqual(expect.arrayContaining(['put', 'run', 'packages', 'reboot']));
    expect(driverPlan.find((a) => a.kind === 'reboot')?.why).toBe('the new driver (nvidia-open) loads at the next boot');
    expect(driverPlan.find((a) => a.summary.includes('zanuri-nvidia-cuda.sources'))?.diff).toContain(`URIs: ${repo.url}/x86_64/`);
    // NVIDIA's order: the keyring package, then the pinning package, then the driver.
    const installs = driverPlan.filter((a) => a.kind === 'packages').map((a) => a.summary);
    expect(installs.findIndex((i) => i.includes('cuda-keyring'))).toBeLessThan(installs.findIndex((i) => i.includes('nvidia-driver-pinning-580')));
    expect(installs.findIndex((i) => i.includes('nvidia-driver-pinning-580'))).toBeLessThan(installs.findIndex((i) => i.includes('nvidia-open')));

    // --no-reboot: the driver goes in, the run stops before the steps that need the rebooted host.
    const before = await bootId(target);
    const deferred = await zanuriProvision(target, [...args, '--no-reboot']);
    expect(deferred.code, deferred.stdout).toBe(0);
    expect(status(deferred, 'nvidia-driver')).toBe('changed');
    expect(why(deferred, 'nvidia-driver')).toMatch(/a reboot is pending \(--no-reboot\): nvidia-open was installed after this boot/);
    expect([status(deferred, 'fabric-manager'), status(deferred, 'cuda-toolkit')]).toEqual(['not-run', 'not-run']);
    expect(report(deferred).rebootPending).toMatchObject({ step: 'nvidia-driver', since: 'this run' });
    expect(report(deferred).reboots).toEqual([]);
    expect(await bootId(target)).toBe(before);
    expect((await target.exec(['apt-mark', 'showhold'])).stdout).toContain('nvidia-open\n');
    expect((await target.exec(['cat', '/run/zanuri/reboot-required'])).stdout).toMatch(/^nvidia-driver: nvidia-open was installed after this boot/);

    // The next run finds the reboot owed by the earlier one and says so; this one reboots and resumes.
    const dry2 = await zanuriProvision(target, [...args, '--dry-run']);
    expect(report(dry2).rebootPending).toMatchObject({ step: 'nvidia-driver', since: 'an earlier run' });
    // What comes after the reboot (the persistence daemon) was not done either.
    expect(dry2.host.steps.find((s) => s.id === 'nvidia-driver')?.actions.map((a) => a.kind)).toEqual(['reboot', 'service']);

    const apply = await zanuriProvision(target, args);
    expect(apply.host.steps.filter((s) => s.status === 'failed' || s.status === 'rolled-back'), apply.stdout).toEqual([]);
    expect(apply.code, apply.stderr).toBe(0);
    expect(report(apply).rebootPending).toMatchObject({ since: 'an earlier run' });
    expect(report(apply).reboots).toEqual([{ step: 'nvidia-driver', why: expect.stringMatching(/^nvidia-open was installed after this boot/) }]);
    expect(await bootId(target)).not.toBe(before);
    expect((await target.exec(['test', '-e', '/run/zanuri/reboot-required'])).exitCode).toBe(1);
    expect([status(apply, 'nvidia-driver'), status(apply, 'fabric-manager'), status(apply, 'cuda-toolkit')]).toEqual(['changed', 'changed', 'changed']);

    // The pin kept the 590 driver out; Fabric Manager of exactly the driver's version (the stand-in repository
    // also has 580.40.01), held; CUDA 13.0, the newest driver 580 runs.
    const versions = await target.exec(['dpkg-query', '-W', '-f=${Package} ${Version}\\n', 'nvidia-open', 'nvidia-driver-pinning-580', 'nvidia-fabricmanager-580', 'cuda-toolkit-13-0']);
    expect(versions.stdout).toContain('nvidia-open 580.65.06-1\n');
    expect(versions.stdout).toContain('nvidia-driver-pinning-580 580.65.06-1\n');
    expect(versions.stdout).toContain('nvidia-fabricmanager-580 580.65.06-1\n');
    expect(versions.stdout).toContain('cuda-toolkit-13-0 13.0.0-1\n');
    expect((await target.exec(['apt-mark', 'showhold'])).stdout.split('\n').filter(Boolean).sort()).toEqual(['cuda-toolkit-13-0', 'nvidia-fabricmanager-580', 'nvidia-open']);
    expect(why(apply, 'cuda-toolkit')).toMatch(/CUDA 13\.0: the newest in the repository that driver 580\.65\.06 runs/);
    expect((await target.exec(['bash', '-lc', 'nvcc --version'])).stdout).toContain('release 13.0, V13.0.48');
    // cuda-keyring owns the repository now: its source and keyring; zanuri's bootstrap source and key are gone,
    // and apt reads the lists without a conflicting Signed-By.
    expect((await target.exec(['sh', '-c', 'ls /etc/apt/sources.list.d/ /etc/apt/keyrings/'])).stdout).not.toMatch(/zanuri-nvidia-cuda/);
    expect((await target.exec(['cat', '/etc/apt/sources.list.d/cuda-debian12-x86_64.list'])).stdout).toBe(`deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] ${repo.url}/x86_64/ /\n`);
    const update = await target.exec(['apt-get', 'update']);
    expect(update.exitCode, update.stderr).toBe(0);
    expect(update.stderr).not.toMatch(/Conflicting values|configured multiple times/);
    expect((await target.exec(['cat', '/etc/modprobe.d/zanuri-blacklist-nouveau.conf'])).stdout).toMatch(/^blacklist nouveau$/m);
    expect((await target.exec(['systemctl', 'is-enabled', 'nvidia-persistenced.service', 'nvidia-fabricmanager.service'])).stdout).toBe('enabled\nenabled\n');

    // The last two of the four cells: nothing left to do, and no reboot.
    const dry3 = await zanuriProvision(target, [...args, '--dry-run']);
    expect(dry3.host.steps.filter((s) => s.status !== 'unchanged'), 'the dry run after must find nothing to do').toEqual([]);
    const again = await zanuriProvision(target, args);
    expect(again.code).toBe(0);
    expect(again.host.summary.changed).toBe(0);
    expect(report(again).reboots).toEqual([]);
    expect(report(again).rebootPending).toBeUndefined();
    expect(why(again, 'nvidia-driver')).toMatch(/driver 580\.65\.06 \(branch 580 >= 580\) installed and held|branch 580 by the cuda-repo route/);
  }, 600_000);

  it('installs Debian 12\'s non-free nvidia-driver (DKMS, branch 535) in four cells, rebooting once, and DKMS builds the module for the installed kernel', async () => {
    const [target2] = (await startTargets(1, { rebootable: true })) as [TestTarget];
    const before = await bootId(target2);
    const [dry1, apply1] = await fourCells(target2, ['--playbook', playbook('gpu-debian')], ['nvidia-driver']);
    const planned = dry1.host.steps.find((s) => s.id === 'nvidia-driver')?.actions ?? [];
    expect(planned.find((a) => a.summary.includes('zanuri-debian-non-free.sources'))?.diff).toMatch(/Components: contrib non-free non-free-firmware/);
    expect(planned.find((a) => a.kind === 'reboot')?.why).toMatch(/^the new driver \(.*nvidia-kernel-dkms.*\) loads at the next boot$/);
    expect(report(apply1).reboots).toEqual([{ step: 'nvidia-driver', why: expect.stringMatching(/installed after this boot/) }]);
    expect(await bootId(target2)).not.toBe(before);
    const dkms = await target2.exec(['dkms', 'status']);
    expect(dkms.stdout).toMatch(/^nvidia-current\/535\.[\d.]+, \d+\.\d+\.\d+-\d+-amd64, x86_64: installed/m);
    const held = (await target2.exec(['apt-mark', 'showhold'])).stdout;
    for (const name of ['nvidia-kernel-dkms', 'nvidia-driver', 'nvidia-smi', 'nvidia-persistenced']) expect(held).toContain(`${name}\n`);
    // Without a GPU nvidia-smi cannot talk to a driver: it exits 9, the proof that it is the real tool.
    expect((await target2.exec(['nvidia-smi'])).exitCode).toBe(9);
    await target2.stop();
  }, 1_200_000);
});
