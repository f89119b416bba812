/**
 * systeminformation as an independent oracle for the probe. The probe (one sh script + pure parsers) is
 * zanuri's only fact path, for this machine and for SSH hosts alike; systeminformation reads the same kernel
 * sources on the machine that runs the tests, through code zanuri did not write. Where both read one source,
 * their answers must be equal, so a parser regression shows up on any machine, not only on captured output.
 *
 * Not compared: ECC, VRAM and CUDA. On Linux systeminformation reports ECC as false (its grep drops the lines it
 * needs), the PCI BAR size as VRAM when no NVIDIA driver is loaded, and no CUDA version at all, so there it is
 * the wrong answer, not an oracle.
 *
 * It runs real commands on this machine without root (the probe's root-only sections read as unknown), so it
 * lives beside the other tests against real hosts rather than with the pure parser tests in test/unit/.
 */
import { blockDevices, cpu, mem, osInfo, type Systeminformation } from 'systeminformation';
import { beforeAll, describe, expect, it } from 'vitest';
import { gatherHostFacts } from '../../src/facts/host.js';
import type { HostFacts } from '../../src/facts/types.js';
import { connect } from '../../src/transport/connect.js';

/** Node's names for the architectures zanuri runs on, as `uname -m` prints them. */
const unameArch: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The probe's own rule for block devices that are not disks (src/facts/disks.ts), applied to the oracle's list. */
const notADisk = /^(loop|ram|zram|sr)\d+$/;

// The probe and systeminformation are Linux readers; elsewhere there is nothing to compare.
describe.skipIf(process.platform !== 'linux')('the probe agrees with systeminformation on this machine', () => {
  let facts: HostFacts;
  let siCpu: Systeminformation.CpuData;
  let siMem: Systeminformation.MemData;
  let siOs: Systeminformation.OsData;
  let siDisks: Systeminformation.BlockDevicesData[];

  beforeAll(async () => {
    // The same path `zanuri check` takes for the local host: connect(null) gives the local transport, which runs
    // the one probe script that SSH hosts run, and the same parsers read its output.
    const transport = await connect(null);
    try {
      [facts, siCpu, siMem, siOs, siDisks] = await Promise.all([gatherHostFacts(transport), cpu(), mem(), osInfo(), blockDevices()]);
    } finally {
      await transport.close();
    }
  });

  it('counts the same physical cores', () => {
    // Both take Core(s) per socket x Socket(s) from lscpu: systeminformation parses its text, the probe its JSON.
    expect(facts.cpu.cores).toBe(siCpu.physicalCores);
  });

  it('counts the same logical CPUs', () => {
    // systeminformation counts os.cpus() (the kernel's online CPUs), the probe lscpu's CPU(s) (present CPUs).
    // They differ only when a CPU is offline, which this test then reports rather than hides.
    expect(facts.cpu.threads).toBe(siCpu.cores);
  });

  it('reads the same total memory, to the byte', () => {
    // No tolerance: both read MemTotal from /proc/meminfo, which the kernel prints in whole kB, and multiply by
    // 1024. It changes only on memory hotplug or a balloon driver, never in the instant between the two reads.
    expect(facts.memory.totalBytes).toBe(siMem.total);
  });

  it('lists the same disks with the same sizes, agreeing even when there are none', () => {
    // blockDevices() reads `lsblk -bP` (key="value" pairs); the probe reads `lsblk -J -b`. diskLayout() is not
    // used: it leaves out a disk that has no model and holds a filesystem (a VM's root disk) and runs smartctl.
    const oracle = siDisks
      .filter((d) => d.type === 'disk' && !notADisk.test(d.name))
      .map((d) => ({ name: d.name, sizeBytes: d.size }))
      .sort((a, b) => a.name.localeCompare(b.name));
    const probe = facts.disks.devices
      .map((d) => ({ name: d.name, sizeBytes: d.sizeBytes }))
      .sort((a, b) => a.name.localeCompare(b.name));
    expect(probe).toEqual(oracle);
  });

  it('names the same transport for every disk: lsblk\'s TRAN, else what the kernel name says', () => {
    // Where lsblk's TRAN is empty (virtio, some NVMe) systeminformation says nothing and the probe infers nvme or
    // virtio from the kernel name; that rule is the expectation for those disks, so every disk is compared.
    const fromName = (name: string): string | null => (/^nvme\d+n\d+$/.test(name) ? 'nvme' : /^vd[a-z]+$/.test(name) ? 'virtio' : null);
    const oracle = new Map(siDisks.filter((d) => d.type === 'disk' && !notADisk.test(d.name)).map((d) => [d.name, d.protocol ? d.protocol.toLowerCase() : fromName(d.name)]));
    const probe = new Map(facts.disks.devices.map((d) => [d.name, d.transport]));
    expect(probe).toEqual(oracle);
  });

  it('tells rotational disks from solid-state ones the same way', () => {
    // systeminformation maps ROTA 0 to SSD and anything else to HDD; the probe keeps an unreadable ROTA unknown,
    // which the oracle cannot express, so those disks are left out of both sides.
    const known = facts.disks.devices.filter((d) => d.rotational !== null);
    const probe = new Map(known.map((d) => [d.name, d.rotational ? 'HDD' : 'SSD']));
    const oracle = new Map(siDisks.filter((d) => d.type === 'disk' && probe.has(d.name)).map((d) => [d.name, d.physical]));
    expect(probe).toEqual(oracle);
  });

  it('reads the same kernel release and architecture', () => {
    // Both come from uname(2): the probe runs `uname -r`/`uname -m`, systeminformation asks Node (os.release(), os.arch()).
    expect({ kernel: facts.os.kernel, arch: facts.os.arch }).toEqual({ kernel: siOs.kernel, arch: unameArch[siOs.arch] ?? siOs.arch });
  });

  it('reads the same OS release from os-release', () => {
    // systeminformation takes the release from PRETTY_NAME or VERSION, which carry the point release
    // (Ubuntu "22.04.4 LTS" for VERSION_ID "22.04"): it must be VERSION_ID, or VERSION_ID continued after "." or " ".
    // Without a VERSION_ID (Debian sid, Arch) the probe says unknown and the oracle must find no number either.
    // The codename is not compared: it is not a zanuri fact (profiles key on ID and VERSION_ID).
    const versionId = facts.os.versionId;
    const expected = versionId === null ? /^[^\d]/ : new RegExp(`^${versionId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:$|[. ])`);
    expect(siOs.release).toMatch(expected);
  });

  it('reads the distribution name that its PRETTY_NAME begins with', () => {
    // systeminformation's distro is os-release NAME (or lsb-release DISTRIB_ID), which begins PRETTY_NAME on the
    // distributions zanuri supports ("Debian GNU/Linux 12 (bookworm)", "Ubuntu 22.04.4 LTS", "Rocky Linux 9.3 ...").
    expect(facts.os.prettyName?.slice(0, siOs.distro.length)).toBe(siOs.distro);
  });
});
