/**
 * The hardware and OS facts of one host. Every field is what the probe could read; a value that
 * could not be read is null (unknown), never a guess. Sizes are bytes, speeds Mbit/s.
 */
export interface HostFacts {
  os: OsFacts;
  cpu: CpuFacts;
  memory: MemoryFacts;
  gpus: GpuFacts;
  disks: DiskFacts;
  filesystems: FilesystemFact[];
  nics: NicFact[];
  firmware: FirmwareFacts;
  /** Installed versions of the software profiles name, e.g. { docker: "24.0.7" }; absent = not found. */
  software: Record<string, string>;
  /** Whether installed upgrades wait for a reboot (/var/run/reboot-required), and which packages. */
  reboot?: RebootFacts;
}

export interface RebootFacts {
  /** null: unknown (the probe could not tell). */
  required: boolean | null;
  /** From /var/run/reboot-required.pkgs, sorted, each once. */
  packages: string[];
}

export interface OsFacts {
  /** os-release ID, e.g. "debian", "ubuntu", "rhel", "rocky". */
  id: string | null;
  /** os-release ID_LIKE words, e.g. ["rhel", "centos", "fedora"]. */
  idLike: string[];
  /** os-release VERSION_ID, e.g. "12", "22.04". */
  versionId: string | null;
  prettyName: string | null;
  kernel: string | null;
  arch: string | null;
  /** What runs as PID 1: "systemd", "init", "sh", ... */
  initSystem: string | null;
}

export interface CpuFacts {
  model: string | null;
  arch: string | null;
  sockets: number | null;
  /** Physical cores across all sockets. */
  cores: number | null;
  /** Logical CPUs (hardware threads). */
  threads: number | null;
}

export interface MemoryFacts {
  /** MemTotal from /proc/meminfo: what the kernel can use, a little below the installed size. */
  totalBytes: number | null;
  /** true/false when dmidecode or EDAC could tell; null when neither was readable. */
  ecc: boolean | null;
  /** Where the ECC answer came from. */
  eccSource: 'dmidecode' | 'edac' | null;
}

export interface GpuFacts {
  /** NVIDIA driver version when a driver is loaded, e.g. "535.104.05". */
  driverVersion: string | null;
  /** Highest CUDA version the driver supports, e.g. "12.2". */
  cudaVersion: string | null;
  devices: GpuDevice[];
}

export interface GpuDevice {
  vendor: 'nvidia' | 'amd' | 'intel' | 'other';
  /** Marketing name, e.g. "NVIDIA H100 80GB HBM3". */
  name: string | null;
  /** Family used by requirements, e.g. "H100", "A100", "RTX 4090"; null when unknown. */
  family: string | null;
  /** Memory in bytes from the driver; null when no driver is loaded (never the PCI BAR size). */
  vramBytes: number | null;
  /** PCI address, e.g. "0000:01:00.0". */
  pciAddress: string | null;
  /** Numeric PCI id "10de:2330". */
  pciId: string | null;
  /** true when the device is seen on the PCI bus but no driver reports it. */
  driverMissing: boolean;
}

export interface DiskFacts {
  devices: DiskDevice[];
  /** Software RAID arrays from /proc/mdstat. */
  raids: RaidArray[];
}

export interface DiskDevice {
  name: string;
  sizeBytes: number;
  /** nvme, sata, sas, usb, virtio, ... from lsblk TRAN or the device name. */
  transport: string | null;
  rotational: boolean | null;
  model: string | null;
  /** Names of md arrays this disk (or one of its partitions) belongs to. */
  raidMemberOf: string[];
}

export interface RaidArray {
  name: string;
  level: string;
  /** Member devices as named in /proc/mdstat (partitions, e.g. "nvme0n1p2"). */
  members: string[];
  sizeBytes: number | null;
}

export interface FilesystemFact {
  mountpoint: string;
  fstype: string;
  sizeBytes: number;
  availableBytes: number;
  source: string;
}

export interface NicFact {
  name: string;
  /** Link speed in Mbit/s; null when the link is down or the driver does not report it. */
  speedMbps: number | null;
  operstate: string | null;
  /** true for a physical device (has /sys/class/net/X/device). */
  physical: boolean;
}

export interface FirmwareFacts {
  /** "uefi" or "bios". */
  boot: 'uefi' | 'bios' | null;
  /** Secure Boot enabled; null when not readable or not UEFI. */
  secureBoot: boolean | null;
}
