import { describe, expect, it } from 'vitest';
import { judgeProfile } from '../../../src/profiles/judge.js';
import type { Profile, Requirement } from '../../../src/profiles/types.js';
import { h100ServerFacts, nvidia, vmFacts } from './sample-facts.js';

const GiB = 1024 ** 3;

function profile(...requirements: Requirement[]): Profile {
  return { id: 't', system: 'Test', tier: 'test', rank: 1, title: 'test', source: 'test', requirements, file: 't.yaml' };
}

const req = <R extends Partial<Requirement>>(r: R): Requirement => ({ id: 'r', level: 'required', source: 's', ...r }) as unknown as Requirement;

const statusOf = (facts: ReturnType<typeof vmFacts>, r: Requirement): string => judgeProfile(facts, profile(r)).findings[0]?.status ?? 'none';

describe('judgeProfile', () => {
  it('fails a required minimum and only warns for a recommended one', () => {
    const verdict = judgeProfile(vmFacts(), profile(
      req({ id: 'threads', check: 'cpu.threads', min: 2 }),
      req({ id: 'cores', check: 'cpu.cores', min: 8 }),
      req({ id: 'cores-rec', check: 'cpu.cores', min: 16, level: 'recommended' }),
    ));
    expect(verdict.findings.map((f) => [f.requirement, f.status])).toEqual([['threads', 'pass'], ['cores', 'fail'], ['cores-rec', 'warn']]);
    expect(verdict.status).toBe('fail');
  });

  it('accepts the memory the kernel reserves: a 32 GB server shows about 31 GiB', () => {
    const facts = { ...vmFacts(), memory: { totalBytes: 31.2 * GiB, ecc: true, eccSource: 'dmidecode' as const } };
    expect(statusOf(facts, req({ check: 'memory.total', minGB: 32 }))).toBe('pass');
    expect(statusOf({ ...facts, memory: { ...facts.memory, totalBytes: 28 * GiB } }, req({ check: 'memory.total', minGB: 32 }))).toBe('fail');
  });

  it('says unknown, not fail, when ECC could not be read', () => {
    const finding = judgeProfile(vmFacts(), profile(req({ check: 'memory.ecc' }))).findings[0];
    expect(finding?.status).toBe('unknown');
    expect(finding?.reason).toMatch(/root|sudo/);
  });

  describe('GPUs are judged by family and VRAM, not by name strings', () => {
    const prodGpu = req({ check: 'gpu', anyOf: [{ family: 'A100', minVramGB: 80 }, { family: 'H100' }] });
    const devGpu = req({ check: 'gpu', anyOf: [{ family: 'RTX 4090' }, { minVramGB: 24 }] });
    const withGpu = (...devices: ReturnType<typeof nvidia>[]) => ({ ...vmFacts(), gpus: { driverVersion: '550.54.15', cudaVersion: '12.4', devices } });

    it('passes "A100 80GB or H100" for an H100 80GB HBM3 that reports 81559 MiB', () => {
      expect(statusOf(h100ServerFacts(), prodGpu)).toBe('pass');
    });

    it('fails "A100 80GB or H100" for an A100 40GB', () => {
      expect(statusOf(withGpu(nvidia('NVIDIA A100-SXM4-40GB', 'A100', 40960, '10de:20b0')), prodGpu)).toBe('fail');
    });

    it('passes "A100 80GB" for an A100 80GB', () => {
      expect(statusOf(withGpu(nvidia('NVIDIA A100-SXM4-80GB', 'A100', 81920, '10de:20b2')), prodGpu)).toBe('pass');
    });

    it('passes "RTX 4090 or equivalent" for a 24 GB card and for a bigger one, fails a 12 GB card', () => {
      expect(statusOf(withGpu(nvidia('NVIDIA GeForce RTX 4090', 'RTX 4090', 24564, '10de:2684')), devGpu)).toBe('pass');
      expect(statusOf(withGpu(nvidia('NVIDIA L40S', 'L40S', 46068, '10de:26b9')), devGpu)).toBe('pass');
      expect(statusOf(withGpu(nvidia('NVIDIA GeForce RTX 3060', 'RTX 3060', 12288, '10de:2504')), devGpu)).toBe('fail');
    });

    it('says unknown for a card on the bus without a driver when only VRAM could decide', () => {
      const finding = judgeProfile(withGpu(nvidia('NVIDIA Corporation Device', 'L40S', null, '10de:26b9')), profile(devGpu)).findings[0];
      expect(finding?.status).toBe('unknown');
      expect(finding?.reason).toMatch(/driver/);
    });

    it('counts GPUs when several are required', () => {
      expect(statusOf(h100ServerFacts(), req({ check: 'gpu', count: 2, anyOf: [{ family: 'H100' }] }))).toBe('pass');
      expect(statusOf(h100ServerFacts(), req({ check: 'gpu', count: 4, anyOf: [{ family: 'H100' }] }))).toBe('fail');
    });

    it('fails a driver or CUDA minimum without a GPU, and compares versions numerically', () => {
      expect(statusOf(vmFacts(), req({ check: 'gpu.driver', minVersion: '535' }))).toBe('fail');
      expect(statusOf(h100ServerFacts(), req({ check: 'gpu.driver', minVersion: '535' }))).toBe('pass');
      expect(statusOf(h100ServerFacts(), req({ check: 'gpu.cuda', minVersion: '12.1' }))).toBe('pass');
      expect(statusOf(h100ServerFacts(), req({ check: 'gpu.cuda', minVersion: '12.10' }))).toBe('fail');
    });
  });

  describe('disks', () => {
    it('passes NVMe RAID 1 of 2 TB on a server with two 3.84 TB NVMe drives in md0', () => {
      expect(statusOf(h100ServerFacts(), req({ check: 'disk', minGB: 2000, kind: 'nvme', raid: 'raid1' }))).toBe('pass');
    });

    it('fails RAID 1 when there is no md array and says hardware RAID is invisible', () => {
      const finding = judgeProfile(vmFacts(), profile(req({ check: 'disk', minGB: 20, raid: 'raid1' }))).findings[0];
      expect(finding?.status).toBe('fail');
      expect(finding?.reason).toMatch(/hardware RAID/);
    });

    it('cannot tell SSD from HDD on a virtio disk and says so', () => {
      expect(statusOf(vmFacts(), req({ check: 'disk', minGB: 20, kind: 'ssd' }))).toBe('unknown');
      expect(statusOf(vmFacts(), req({ check: 'disk', minGB: 20, kind: 'nvme' }))).toBe('fail');
      expect(statusOf(vmFacts(), req({ check: 'disk', minGB: 20 }))).toBe('pass');
    });

    it('judges disk sizes in decimal gigabytes, as disks are sold', () => {
      const facts = vmFacts();
      facts.disks.devices = [{ name: 'nvme0n1', sizeBytes: 1000204886016, transport: 'nvme', rotational: false, model: 'Samsung SSD 980 PRO 1TB', raidMemberOf: [] }];
      expect(statusOf(facts, req({ check: 'disk', minGB: 1000, kind: 'nvme' }))).toBe('pass');
    });
  });

  it('accepts Rocky Linux for RHEL 8+ but does not take Ubuntu 22.04 for Debian 22', () => {
    const os = req({ check: 'os', anyOf: [{ id: 'rhel', minVersion: '8' }, { id: 'debian', minVersion: '11' }] });
    const rocky = { ...vmFacts(), os: { ...vmFacts().os, id: 'rocky', idLike: ['rhel', 'centos', 'fedora'], versionId: '8.9' } };
    const ubuntu = { ...vmFacts(), os: { ...vmFacts().os, id: 'ubuntu', idLike: ['debian'], versionId: '22.04' } };
    expect(statusOf(rocky, os)).toBe('pass');
    expect(statusOf(ubuntu, os)).toBe('fail');
    expect(statusOf(vmFacts(), os)).toBe('pass');
  });

  it('compares kernels as versions', () => {
    expect(statusOf(vmFacts(), req({ check: 'kernel', minVersion: '5.4' }))).toBe('pass');
    expect(statusOf({ ...vmFacts(), os: { ...vmFacts().os, kernel: '4.18.0-553.el8_10.x86_64' } }, req({ check: 'kernel', minVersion: '5.4' }))).toBe('fail');
  });

  it('says unknown for link speed on a virtual NIC and judges a real one', () => {
    expect(statusOf(vmFacts(), req({ check: 'nic.speed', minMbps: 1000 }))).toBe('unknown');
    expect(statusOf(h100ServerFacts(), req({ check: 'nic.speed', minMbps: 10000 }))).toBe('pass');
    expect(statusOf(h100ServerFacts(), req({ check: 'nic.speed', minMbps: 40000 }))).toBe('fail');
  });

  it('judges free space on the filesystem holding a path', () => {
    expect(statusOf(vmFacts(), req({ check: 'filesystem.free', path: '/var/lib/models', minGB: 50 }))).toBe('pass');
    expect(statusOf(vmFacts(), req({ check: 'filesystem.free', path: '/', minGB: 500 }))).toBe('fail');
  });

  it('reports missing software as unknown (provision installs it) but fails a too-old version', () => {
    expect(statusOf(vmFacts(), req({ check: 'software', name: 'docker', minVersion: '20.10' }))).toBe('unknown');
    expect(statusOf(h100ServerFacts(), req({ check: 'software', name: 'docker', minVersion: '20.10' }))).toBe('pass');
    expect(statusOf(h100ServerFacts(), req({ check: 'software', name: 'python3', minVersion: '3.11' }))).toBe('fail');
  });

  it('gives the profile warn when nothing fails but something is unknown or only recommended', () => {
    expect(judgeProfile(vmFacts(), profile(req({ check: 'memory.ecc' }))).status).toBe('warn');
    expect(judgeProfile(vmFacts(), profile(req({ check: 'cpu.threads', min: 1 }))).status).toBe('pass');
  });
});
