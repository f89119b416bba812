import type { GpuDevice, HostFacts } from '../../../src/facts/types.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** A plain 2-vCPU Debian 12 VM, like zanuri's development machine. Tests override what they judge. */
export function vmFacts(): HostFacts {
  return {
    os: { id: 'debian', idLike: [], versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)', kernel: '6.1.0-18-amd64', arch: 'x86_64', initSystem: 'systemd' },
    cpu: { model: 'AMD EPYC', arch: 'x86_64', sockets: 1, cores: 2, threads: 2 },
    memory: { totalBytes: 24683124 * 1024, ecc: null, eccSource: null },
    gpus: { driverVersion: null, cudaVersion: null, devices: [] },
    disks: { devices: [{ name: 'vda', sizeBytes: 270553174016, transport: 'virtio', rotational: true, model: null, raidMemberOf: [] }], raids: [] },
    filesystems: [{ source: '/dev/vda', fstype: 'ext4', sizeBytes: 270553174016, availableBytes: 85122191360, mountpoint: '/' }],
    nics: [{ name: 'eth0', speedMbps: null, operstate: 'up', physical: true }],
    firmware: { boot: 'bios', secureBoot: false },
    software: {},
  };
}

export function nvidia(name: string, family: string, vramMiB: number | null, pciId: string): GpuDevice {
  return { vendor: 'nvidia', name, family, vramBytes: vramMiB === null ? null : vramMiB * MiB, pciAddress: null, pciId, driverMissing: vramMiB === null };
}

/** A DGX-like H100 server with ECC, NVMe RAID 1 and 25 GbE. */
export function h100ServerFacts(): HostFacts {
  const facts = vmFacts();
  return {
    ...facts,
    os: { ...facts.os, id: 'ubuntu', idLike: ['debian'], versionId: '22.04', kernel: '5.15.0-105-generic' },
    cpu: { model: 'Intel(R) Xeon(R) Platinum 8480+', arch: 'x86_64', sockets: 2, cores: 112, threads: 224 },
    memory: { totalBytes: 2015 * GiB, ecc: true, eccSource: 'edac' },
    gpus: { driverVersion: '550.54.15', cudaVersion: '12.4', devices: [nvidia('NVIDIA H100 80GB HBM3', 'H100', 81559, '10de:2330'), nvidia('NVIDIA H100 80GB HBM3', 'H100', 81559, '10de:2330')] },
    disks: {
      devices: [
        { name: 'nvme0n1', sizeBytes: 3840755982336, transport: 'nvme', rotational: false, model: 'SAMSUNG MZQL23T8HCLS-00A07', raidMemberOf: ['md0'] },
        { name: 'nvme1n1', sizeBytes: 3840755982336, transport: 'nvme', rotational: false, model: 'SAMSUNG MZQL23T8HCLS-00A07', raidMemberOf: ['md0'] },
      ],
      raids: [{ name: 'md0', level: 'raid1', members: ['nvme0n1p2', 'nvme1n1p2'], sizeBytes: 3838000000000 }],
    },
    nics: [{ name: 'ens1f0', speedMbps: 25000, operstate: 'up', physical: true }],
    software: { docker: '24.0.7', python3: '3.10.12' },
  };
}
