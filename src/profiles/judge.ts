import { atLeast } from '../core/version.js';
import { filesystemFor } from '../facts/filesystems.js';
import type { GpuDevice, HostFacts } from '../facts/types.js';
import type { GpuOption, Profile, Requirement } from './types.js';

export type Status = 'pass' | 'warn' | 'fail' | 'unknown';

export interface Finding {
  requirement: string;
  check: Requirement['check'];
  level: Requirement['level'];
  status: Status;
  expected: string;
  actual: string;
  /** Why it is not a pass, when that is not obvious from expected/actual. */
  reason?: string;
  source: string;
}

export interface ProfileVerdict {
  profile: string;
  system: string;
  tier: string;
  rank: number;
  title: string;
  /** fail: a required check fails; warn: recommendations missed or facts unknown; pass: all met. */
  status: 'pass' | 'warn' | 'fail';
  findings: Finding[];
}

const GiB = 1024 ** 3;
const GB = 1e9;
/**
 * MemTotal is what the kernel can use: firmware, the kernel image and crashkernel reservations hide
 * 2-7% of the installed size, so a "32 GB" server reports about 31 GiB. Accept that much shortfall.
 */
const memoryTolerance = 0.93;
/** md metadata and partitioning make an array a little smaller than its disks. */
const raidTolerance = 0.97;

const gib = (bytes: number): string => `${(bytes / GiB).toFixed(1)} GiB`;
const gb = (bytes: number): string => (bytes >= 1e12 ? `${(bytes / 1e12).toFixed(2)} TB` : `${(bytes / GB).toFixed(0)} GB`);

type Outcome = { met: boolean | null; expected: string; actual: string; reason?: string };

const unknown = (expected: string, reason: string): Outcome => ({ met: null, expected, actual: 'unknown', reason });

function gpuMatches(device: GpuDevice, option: GpuOption): boolean | null {
  if (option.family !== undefined && device.family?.toLowerCase() !== option.family.toLowerCase()) return false;
  if (option.minVramGB !== undefined) {
    if (device.vramBytes === null) return null;
    if (device.vramBytes < option.minVramGB * GB) return false;
  }
  return true;
}

function describeGpuOption(option: GpuOption): string {
  return [option.family ?? 'any GPU', option.minVramGB === undefined ? '' : `>= ${option.minVramGB} GB VRAM`].filter(Boolean).join(' ');
}

function judgeGpu(facts: HostFacts, r: Extract<Requirement, { check: 'gpu' }>): Outcome {
  const count = r.count ?? 1;
  const options = r.anyOf?.length ? r.anyOf : [{}];
  const devices = facts.gpus.devices.filter((d) => d.vendor === (r.vendor ?? 'nvidia'));
  const expected = `${count} x ${options.map(describeGpuOption).join(' or ')}`;
  const actual = devices.length
    ? devices.map((d) => `${d.name ?? d.pciId ?? 'GPU'}${d.vramBytes === null ? ' (no driver, VRAM unknown)' : ` ${gib(d.vramBytes)}`}`).join(', ')
    : 'no NVIDIA GPU';
  let matching = 0;
  let undecided = 0;
  for (const device of devices) {
    const verdicts = options.map((o) => gpuMatches(device, o));
    if (verdicts.includes(true)) matching += 1;
    else if (verdicts.includes(null)) undecided += 1;
  }
  if (matching >= count) return { met: true, expected, actual };
  if (matching + undecided >= count) {
    return { met: null, expected, actual, reason: 'a GPU without a loaded driver reports no VRAM; install the NVIDIA driver and check again' };
  }
  return { met: false, expected, actual };
}

function judgeDisk(facts: HostFacts, r: Extract<Requirement, { check: 'disk' }>): Outcome {
  const kind = r.kind ?? 'any';
  const expected = `${r.raid ? `${r.raid} of ` : ''}${kind === 'any' ? '' : `${kind.toUpperCase()} `}disk${r.raid ? 's' : ''} >= ${gb(r.minGB * GB)}`;
  const devices = facts.disks.devices;
  if (!devices.length) return unknown(expected, 'no disk could be read (lsblk missing or no block devices visible)');
  const ofKind = (d: (typeof devices)[number]): boolean | null => {
    if (kind === 'any') return true;
    if (d.transport === 'nvme') return true;
    if (kind === 'nvme') return false;
    if (d.rotational === false) return true;
    // Virtual disks are often flagged rotational whatever backs them: that is no evidence of spinning rust.
    return d.transport === 'virtio' || d.rotational === null ? null : false;
  };
  if (r.raid) {
    const arrays = facts.disks.raids.filter((a) => a.level === r.raid);
    const actual = facts.disks.raids.length ? facts.disks.raids.map((a) => `${a.name} ${a.level} ${a.sizeBytes === null ? '' : gb(a.sizeBytes)}`.trim()).join(', ') : 'no software RAID';
    for (const array of arrays) {
      const members = devices.filter((d) => d.raidMemberOf.includes(array.name));
      const big = array.sizeBytes !== null && array.sizeBytes >= r.minGB * GB * raidTolerance;
      if (big && members.length && members.every((d) => ofKind(d) === true)) return { met: true, expected, actual };
    }
    return { met: false, expected, actual, reason: 'hardware RAID is invisible to the OS; if the disks sit behind a RAID controller, check it there' };
  }
  const actual = devices.map((d) => `${d.name} ${d.transport ?? '?'} ${gb(d.sizeBytes)}${d.rotational ? ' rotational' : ''}`).join(', ');
  const big = devices.filter((d) => d.sizeBytes >= r.minGB * GB);
  if (big.some((d) => ofKind(d) === true)) return { met: true, expected, actual };
  if (big.some((d) => ofKind(d) === null)) return { met: null, expected, actual, reason: 'the disk type cannot be told for this virtual disk' };
  return { met: false, expected, actual };
}

function judgeOne(facts: HostFacts, r: Requirement): Outcome {
  switch (r.check) {
    case 'cpu.cores':
    case 'cpu.threads': {
      const value = r.check === 'cpu.cores' ? facts.cpu.cores : facts.cpu.threads;
      const what = r.check === 'cpu.cores' ? 'cores' : 'threads';
      const expected = `>= ${r.min} ${what}`;
      return value === null ? unknown(expected, 'lscpu and /proc/cpuinfo gave no count') : { met: value >= r.min, expected, actual: `${value} ${what}` };
    }
    case 'cpu.arch': {
      const arch = facts.cpu.arch === 'amd64' ? 'x86_64' : facts.cpu.arch;
      const expected = r.oneOf.join(' or ');
      return arch === null ? unknown(expected, 'architecture not readable') : { met: r.oneOf.includes(arch), expected, actual: arch };
    }
    case 'memory.total': {
      const expected = `>= ${r.minGB} GB RAM`;
      const total = facts.memory.totalBytes;
      return total === null ? unknown(expected, '/proc/meminfo not readable') : { met: total >= r.minGB * GiB * memoryTolerance, expected, actual: `${gib(total)} usable` };
    }
    case 'memory.ecc': {
      const { ecc, eccSource } = facts.memory;
      return ecc === null
        ? unknown('ECC memory', 'needs root or passwordless sudo for dmidecode, or an EDAC driver')
        : { met: ecc, expected: 'ECC memory', actual: `${ecc ? 'ECC' : 'no ECC'} (${eccSource})` };
    }
    case 'gpu':
      return judgeGpu(facts, r);
    case 'gpu.driver':
    case 'gpu.cuda': {
      const value = r.check === 'gpu.driver' ? facts.gpus.driverVersion : facts.gpus.cudaVersion;
      const what = r.check === 'gpu.driver' ? 'NVIDIA driver' : 'CUDA';
      const expected = `${what} >= ${r.minVersion}`;
      if (value === null) {
        return facts.gpus.devices.some((d) => d.vendor === 'nvidia')
          ? { met: false, expected, actual: 'no driver loaded' }
          : { met: false, expected, actual: 'no NVIDIA GPU' };
      }
      return { met: atLeast(value, r.minVersion), expected, actual: value };
    }
    case 'kernel': {
      const expected = `kernel >= ${r.minVersion}`;
      return facts.os.kernel === null ? unknown(expected, 'uname failed') : { met: atLeast(facts.os.kernel, r.minVersion), expected, actual: facts.os.kernel };
    }
    case 'os': {
      const expected = r.anyOf.map((o) => `${o.id}${o.minVersion ? ` ${o.minVersion}+` : ''}`).join(' or ');
      const { id, versionId, idLike } = facts.os;
      if (id === null) return unknown(expected, '/etc/os-release not readable');
      const actual = `${id} ${versionId ?? ''}`.trim();
      const met = r.anyOf.some((o) => {
        // RHEL rebuilds (Rocky, Alma) share RHEL's version numbers; Ubuntu's ID_LIKE=debian does not share Debian's.
        const sameFamily = o.id === id || (o.id === 'rhel' && idLike.includes('rhel'));
        return sameFamily && (!o.minVersion || (versionId !== null && atLeast(versionId, o.minVersion)));
      });
      return { met, expected, actual };
    }
    case 'disk':
      return judgeDisk(facts, r);
    case 'filesystem.free': {
      const expected = `>= ${gb(r.minGB * GB)} free on ${r.path}`;
      const fs = filesystemFor(facts.filesystems, r.path);
      return fs === null ? unknown(expected, `no filesystem found for ${r.path}`) : { met: fs.availableBytes >= r.minGB * GB, expected, actual: `${gb(fs.availableBytes)} free on ${fs.mountpoint}` };
    }
    case 'nic.speed': {
      const expected = `>= ${r.minMbps >= 1000 ? `${r.minMbps / 1000} Gbit/s` : `${r.minMbps} Mbit/s`} link`;
      const speeds = facts.nics.filter((n) => n.speedMbps !== null).map((n) => n.speedMbps as number);
      if (!speeds.length) return unknown(expected, 'no interface reports a link speed (virtual NICs usually do not)');
      const best = Math.max(...speeds);
      return { met: best >= r.minMbps, expected, actual: `${best >= 1000 ? `${best / 1000} Gbit/s` : `${best} Mbit/s`}` };
    }
    case 'software': {
      const expected = `${r.name}${r.minVersion ? ` >= ${r.minVersion}` : ''}`;
      const version = facts.software[r.name];
      if (version === undefined) return { met: null, expected, actual: 'not found', reason: 'not installed or not detectable by check; zanuri provision installs what a playbook names' };
      return { met: !r.minVersion || atLeast(version, r.minVersion), expected, actual: `${r.name} ${version}` };
    }
  }
}

export function judgeProfile(facts: HostFacts, profile: Profile): ProfileVerdict {
  const findings = profile.requirements.map((r): Finding => {
    const outcome = judgeOne(facts, r);
    const status: Status = outcome.met === true ? 'pass' : outcome.met === null ? 'unknown' : r.level === 'required' ? 'fail' : 'warn';
    return {
      requirement: r.id, check: r.check, level: r.level, status, expected: outcome.expected, actual: outcome.actual,
      ...(outcome.reason && status !== 'pass' ? { reason: outcome.reason } : {}), source: r.source,
    };
  });
  const status = findings.some((f) => f.status === 'fail') ? 'fail' : findings.some((f) => f.status !== 'pass') ? 'warn' : 'pass';
  return { profile: profile.id, system: profile.system, tier: profile.tier, rank: profile.rank, title: profile.title, status, findings };
}
