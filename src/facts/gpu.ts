/**
 * GPU facts: pure parsers for the raw text of `nvidia-smi -q` and `lspci -nn -D` (or the probe's sysfs lines of the
 * same shape), and the merge of the two. No I/O here: the probe collects the text, these functions read it.
 *
 * Every parser accepts empty input, garbage and the output of a missing tool, and returns an empty result rather than
 * throwing. VRAM comes only from the driver ("FB Memory Usage" / "Total"); the PCI BAR size is never used.
 */
import type { GpuDevice, GpuFacts } from './types.js';

export interface LspciDevice {
  /** Normalised address: lowercase, domain of at least four hex digits, e.g. "0000:01:00.0". */
  pciAddress: string;
  /** PCI class and subclass, e.g. "0302" (3D controller), "0300" (VGA). */
  classId: string;
  vendorId: string;
  deviceId: string;
  /** Text between the class and the numeric ids, e.g. "NVIDIA Corporation GH100 [H100 SXM5 80GB]". */
  description: string;
}

export interface NvidiaSmiQuery {
  driverVersion: string | null;
  cudaVersion: string | null;
  devices: GpuDevice[];
}

const NVIDIA_VENDOR_ID = '10de';
const MIB = 1024 * 1024;

/** Values nvidia-smi prints for fields that do not apply or could not be read. */
const NOT_A_VALUE = new Set(['', 'n/a', '[n/a]', 'not found', 'not supported', '[not supported]', 'unknown error']);

function valueOrNull(raw: string | undefined): string | null {
  if (raw === undefined) return null;
  const value = raw.trim();
  return NOT_A_VALUE.has(value.toLowerCase()) ? null : value;
}

/**
 * PCI address as "dddd:bb:dd.f", lowercase. nvidia-smi prints an 8-digit domain ("00000000:DB:00.0"), lspci -D a
 * 4-digit one, plain lspci none at all (domain 0), and Intel VMD domains have five digits ("10000:e1:00.0").
 */
export function normalizePciAddress(address: string): string | null {
  const match = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(address.trim());
  if (!match) return null;
  const [, domain = '0', bus = '', device = '', fn = ''] = match;
  const domainHex = parseInt(domain, 16).toString(16).padStart(4, '0');
  return `${domainHex}:${bus}:${device}.${fn}`.toLowerCase();
}

/** "81559 MiB" -> bytes; null for N/A or anything that is not a size. */
function sizeToBytes(raw: string | null): number | null {
  if (raw === null) return null;
  const match = /^(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB)$/i.exec(raw);
  if (!match) return null;
  const [, amount = '', unit = ''] = match;
  const factor = { kib: 1024, mib: MIB, gib: 1024 * MIB }[unit.toLowerCase()] ?? MIB;
  return Math.round(Number(amount) * factor);
}

/**
 * Family names keyed on the numeric PCI device id (vendor 10de), as listed in the PCI ID database (pci.ids).
 * Used when no driver reports the device, and preferred over the marketing name when both are known.
 */
const FAMILY_BY_DEVICE_ID: Readonly<Record<string, string>> = {
  // Hopper / Blackwell data centre
  '2330': 'H100', // GH100 [H100 SXM5 80GB]
  '2331': 'H100', // GH100 [H100 PCIe]
  '2321': 'H100', // GH100 [H100 NVL]
  '2335': 'H200', // GH100 [H200 SXM 141GB]
  '2901': 'B200', // GB100 [B200]
  // Ampere data centre
  '20b0': 'A100', // GA100 [A100 SXM4 40GB]
  '20b2': 'A100', // GA100 [A100 SXM4 80GB]
  '20b5': 'A100', // GA100 [A100 PCIe 80GB]
  '20f1': 'A100', // GA100 [A100 PCIe 40GB]
  '20b7': 'A30', // GA100GL [A30 PCIe]
  '2235': 'A40', // GA102GL [A40]
  '2236': 'A10', // GA102GL [A10]
  // Ada data centre
  '26b9': 'L40S', // AD102GL [L40S]
  '26b5': 'L40', // AD102GL [L40]
  '27b8': 'L4', // AD104GL [L4]
  // Turing / Volta data centre
  '1eb8': 'T4', // TU104GL [Tesla T4]
  '1db1': 'V100', // GV100GL [Tesla V100 SXM2 16GB]
  '1db4': 'V100', // GV100GL [Tesla V100 PCIe 16GB]
  '1db5': 'V100', // GV100GL [Tesla V100 SXM2 32GB]
  '1db6': 'V100', // GV100GL [Tesla V100 PCIe 32GB]
  // Workstation and consumer
  '2230': 'RTX A6000', // GA102GL [RTX A6000]
  '26b1': 'RTX 6000 Ada', // AD102GL [RTX 6000 Ada Generation]
  '2684': 'RTX 4090', // AD102 [GeForce RTX 4090]
  '2204': 'RTX 3090', // GA102 [GeForce RTX 3090]
  '2b85': 'RTX 5090', // GB202 [GeForce RTX 5090]
};

/** Data-centre names, most specific first ("L40S" before "L40" before "L4"; \b keeps "A10" from matching "A100"). */
const FAMILY_BY_NAME: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bGH200\b/i, 'GH200'],
  [/\bGB200\b/i, 'GB200'],
  [/\bB300\b/i, 'B300'],
  [/\bB200\b/i, 'B200'],
  [/\bH200\b/i, 'H200'],
  [/\bH100\b/i, 'H100'],
  [/\bH800\b/i, 'H800'],
  [/\bA100\b/i, 'A100'],
  [/\bA800\b/i, 'A800'],
  [/\bL40S\b/i, 'L40S'],
  [/\bL40\b/i, 'L40'],
  [/\bL20\b/i, 'L20'],
  [/\bL4\b/i, 'L4'],
  [/\bA10G\b/i, 'A10G'],
  [/\bA10\b/i, 'A10'],
  [/\bA30\b/i, 'A30'],
  [/\bA40\b/i, 'A40'],
  [/\bT4\b/i, 'T4'],
  [/\bV100S?\b/i, 'V100'],
  [/\bP100\b/i, 'P100'],
];

/**
 * Requirement family for an NVIDIA GPU: from the numeric device id when it is in the table, else from the marketing
 * name ("NVIDIA H100 80GB HBM3" -> "H100", "NVIDIA GeForce RTX 4090" -> "RTX 4090"). Null when neither tells.
 */
export function nvidiaFamily(nameOrNull: string | null, deviceId?: string): string | null {
  const byId = deviceId === undefined ? undefined : FAMILY_BY_DEVICE_ID[deviceId.toLowerCase()];
  if (byId !== undefined) return byId;
  if (nameOrNull === null) return null;
  const name = nameOrNull.replace(/\s+/g, ' ').trim();
  for (const [pattern, family] of FAMILY_BY_NAME) {
    if (pattern.test(name)) return family;
  }
  const pro = /\bRTX PRO (\d{4})\b/i.exec(name);
  if (pro) return `RTX PRO ${pro[1]}`;
  const workstationAmpere = /\bRTX (A\d{4})\b/i.exec(name);
  if (workstationAmpere) return `RTX ${workstationAmpere[1]?.toUpperCase()}`;
  const workstationAda = /\bRTX (\d{4}) Ada\b/i.exec(name);
  if (workstationAda) return `RTX ${workstationAda[1]} Ada`;
  const consumer = /\b(RTX|GTX) (\d{3,4})(?: (Ti|SUPER))?\b/i.exec(name);
  if (consumer) {
    const [, series = '', number = '', suffix] = consumer;
    const base = `${series.toUpperCase()} ${number}${suffix ? ` ${suffix.toLowerCase() === 'ti' ? 'Ti' : 'SUPER'}` : ''}`;
    return /\bLaptop\b/i.test(name) ? `${base} Laptop` : base;
  }
  return null;
}

interface Line {
  indent: number;
  key: string;
  /** undefined for a section header (a line without a colon). */
  value: string | undefined;
}

function splitLine(raw: string): Line | null {
  const text = raw.replace(/\s+$/, '');
  if (text.trim() === '') return null;
  const indent = text.length - text.trimStart().length;
  const colon = text.indexOf(':');
  if (colon === -1) return { indent, key: text.trim(), value: undefined };
  return { indent, key: text.slice(0, colon).trim(), value: text.slice(colon + 1) };
}

const GPU_HEADER = /^GPU ([0-9a-f]{1,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$/i;

/** One GPU section of `nvidia-smi -q`: every "a / b / c" path of keys to its value (first one wins). */
function readSection(lines: Line[]): Map<string, string> {
  const values = new Map<string, string>();
  const stack: Array<{ indent: number; key: string }> = [];
  for (const line of lines) {
    while (stack.length > 0 && (stack[stack.length - 1]?.indent ?? -1) >= line.indent) stack.pop();
    if (line.value === undefined) {
      stack.push({ indent: line.indent, key: line.key });
      continue;
    }
    const path = [...stack.map((s) => s.key), line.key].join(' / ').toLowerCase();
    if (!values.has(path)) values.set(path, line.value.trim());
  }
  return values;
}

function deviceFromSection(headerAddress: string, values: Map<string, string>): GpuDevice {
  const name = valueOrNull(values.get('product name'));
  // "0x233010DE": device id in the high 16 bits, vendor id in the low 16 bits.
  const idMatch = /^0x([0-9a-f]{4})([0-9a-f]{4})$/i.exec(valueOrNull(values.get('pci / device id')) ?? '');
  const deviceId = idMatch?.[1]?.toLowerCase();
  const vendorId = idMatch?.[2]?.toLowerCase();
  const busId = valueOrNull(values.get('pci / bus id'));
  return {
    vendor: 'nvidia',
    name,
    family: nvidiaFamily(name, deviceId),
    // Only the framebuffer total is VRAM; "BAR1 Memory Usage / Total" is the PCI aperture (e.g. 131072 MiB on H100).
    vramBytes: sizeToBytes(valueOrNull(values.get('fb memory usage / total'))),
    pciAddress: normalizePciAddress(busId ?? headerAddress) ?? normalizePciAddress(headerAddress),
    pciId: deviceId !== undefined && vendorId !== undefined ? `${vendorId}:${deviceId}` : null,
    driverMissing: false,
  };
}

/**
 * Parse `nvidia-smi -q`. Header labels: "Driver Version" (also "KMD Version") and "CUDA Version" (driver 610+ prints
 * "CUDA UMD Version"). Fields that do not apply ("N/A", "[N/A]", "Not Found") are null.
 */
export function parseNvidiaSmiQuery(text: string): NvidiaSmiQuery {
  let driverVersion: string | null = null;
  let cudaVersion: string | null = null;
  const devices: GpuDevice[] = [];
  let current: { address: string; lines: Line[] } | null = null;

  const finish = (): void => {
    if (current !== null) devices.push(deviceFromSection(current.address, readSection(current.lines)));
    current = null;
  };

  for (const raw of text.split(/\r?\n/)) {
    const line = splitLine(raw);
    if (line === null) continue;
    if (line.indent === 0) {
      const header = GPU_HEADER.exec(raw.trim());
      if (header) {
        finish();
        current = { address: header[1] ?? '', lines: [] };
        continue;
      }
      finish();
      const key = line.key.toLowerCase();
      if (key === 'driver version' || key === 'kmd version') driverVersion ??= valueOrNull(line.value);
      if (key === 'cuda version' || key === 'cuda umd version') cudaVersion ??= valueOrNull(line.value);
      continue;
    }
    current?.lines.push(line);
  }
  finish();
  return { driverVersion, cudaVersion, devices };
}

const LSPCI_LINE =
  /^((?:[0-9a-f]{1,8}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) (.+?) \[([0-9a-f]{4})\]: (.*) \[([0-9a-f]{4}):([0-9a-f]{4})\](?: \(rev [0-9a-f]{2}\))?(?: \(prog-if [^)]*\))?$/i;

/**
 * Parse `lspci -nn -D` (or `lspci -nn`, or the probe's sysfs lines "0000:01:00.0 3D controller [0302]: Unknown vendor
 * [10de:2330]"). Indented detail lines of -k/-v and anything else that is not a device line are skipped.
 */
export function parseLspci(text: string): LspciDevice[] {
  const devices: LspciDevice[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const match = LSPCI_LINE.exec(raw.trimEnd());
    if (!match) continue;
    const [, address = '', , classId = '', description = '', vendorId = '', deviceId = ''] = match;
    const pciAddress = normalizePciAddress(address);
    if (pciAddress === null) continue;
    devices.push({
      pciAddress,
      classId: classId.toLowerCase(),
      vendorId: vendorId.toLowerCase(),
      deviceId: deviceId.toLowerCase(),
      description: description.trim(),
    });
  }
  return devices;
}

/**
 * GPU facts of one host: every device the NVIDIA driver reports, plus every NVIDIA display/3D controller (class 03xx,
 * vendor 10de) on the PCI bus that the driver does not report. Those get driverMissing: true, vramBytes: null (no
 * driver, so no trustworthy size) and a family from the device-id table. NVSwitch bridges (class 0680) are not GPUs.
 */
export function gpuFacts(nvidiaSmiQ: string, lspci: string): GpuFacts {
  const smi = parseNvidiaSmiQuery(nvidiaSmiQ);
  const reported = new Set(smi.devices.map((d) => d.pciAddress).filter((a): a is string => a !== null));
  const missing: GpuDevice[] = parseLspci(lspci)
    .filter((d) => d.vendorId === NVIDIA_VENDOR_ID && d.classId.startsWith('03') && !reported.has(d.pciAddress))
    .map((d) => ({
      vendor: 'nvidia',
      name: null,
      family: nvidiaFamily(null, d.deviceId),
      vramBytes: null,
      pciAddress: d.pciAddress,
      pciId: `${d.vendorId}:${d.deviceId}`,
      driverMissing: true,
    }));
  return { driverVersion: smi.driverVersion, cudaVersion: smi.cudaVersion, devices: [...smi.devices, ...missing] };
}

/** NVIDIA devices on the PCI bus: GPUs (display/3D controllers, class 03xx) and NVSwitch bridges (class 0680). */
export interface NvidiaPci {
  gpus: LspciDevice[];
  nvswitches: LspciDevice[];
}

export function nvidiaPci(lspci: string): NvidiaPci {
  const nvidia = parseLspci(lspci).filter((d) => d.vendorId === NVIDIA_VENDOR_ID);
  return {
    gpus: nvidia.filter((d) => d.classId.startsWith('03')),
    // An HGX/DGX baseboard's NVSwitches show as bridges ("Bridge [0680]: NVIDIA Corporation GH100 [H100 NVSwitch]").
    nvswitches: nvidia.filter((d) => d.classId === '0680'),
  };
}

/** GPU architecture generations that decide which kernel modules a driver may use. */
export type GpuGeneration = 'pre-turing' | 'turing' | 'ampere' | 'ada' | 'hopper' | 'blackwell' | 'unknown';

const GENERATION_BY_CHIP: ReadonlyArray<readonly [RegExp, GpuGeneration]> = [
  [/\bG[KMPV]\d{3}/, 'pre-turing'], // Kepler, Maxwell, Pascal, Volta
  [/\bTU\d{3}/, 'turing'],
  [/\bGA\d{3}/, 'ampere'],
  [/\bAD\d{3}/, 'ada'],
  [/\bGH\d{3}/, 'hopper'],
  [/\bGB\d{3}/, 'blackwell'],
];

/**
 * The generation from the chip name lspci prints ("GH100 [H100 SXM5 80GB]"), else from the device id's range
 * (the sysfs fallback prints no names). Ranges from pci.ids: TU10x 1e00-1fff and TU11x 2180-21ff, GA100 20b0-20ff,
 * GA10x 2200-22ff and 2400-25ff, GH100/GH200 2300-23ff, AD10x 2600-28ff, GB100/GB20x 2900-2fff.
 */
export function gpuGeneration(device: LspciDevice): GpuGeneration {
  for (const [pattern, generation] of GENERATION_BY_CHIP) if (pattern.test(device.description)) return generation;
  const id = parseInt(device.deviceId, 16);
  if (Number.isNaN(id)) return 'unknown';
  if (id < 0x1e00) return 'pre-turing';
  return DEVICE_ID_RANGES.find(([from, to]) => id >= from && id < to)?.[2] ?? 'unknown';
}

const DEVICE_ID_RANGES: ReadonlyArray<readonly [number, number, GpuGeneration]> = [
  [0x1e00, 0x2000, 'turing'], [0x20b0, 0x2100, 'ampere'], [0x2180, 0x2200, 'turing'], [0x2200, 0x2300, 'ampere'],
  [0x2300, 0x2400, 'hopper'], [0x2400, 0x2600, 'ampere'], [0x2600, 0x2900, 'ada'], [0x2900, 0x3000, 'blackwell'],
];

export type SecureBootState = 'enabled' | 'disabled' | 'not-uefi' | 'unknown';

/**
 * `mokutil --sb-state`: "SecureBoot enabled" / "SecureBoot disabled" (mokutil's own printf), "EFI variables are
 * not supported on this system" on a BIOS boot, where Secure Boot cannot be on. Anything else is unknown.
 */
export function parseMokutilSbState(text: string): SecureBootState {
  if (/^SecureBoot enabled$/m.test(text)) return 'enabled';
  if (/^SecureBoot disabled$/m.test(text)) return 'disabled';
  if (/EFI variables are not supported/i.test(text)) return 'not-uefi';
  return 'unknown';
}

/** The loaded kernel module's version: /sys/module/nvidia/version ("535.216.01") or /proc/driver/nvidia/version's NVRM line. */
export function parseLoadedNvidiaVersion(text: string): string | null {
  const nvrm = /NVRM version:.*?\s(\d{3,}\.\d+(?:\.\d+)?)\s/.exec(text);
  if (nvrm) return nvrm[1] ?? null;
  const plain = /^\s*(\d{3,}\.\d+(?:\.\d+)?)\s*$/.exec(text);
  return plain?.[1] ?? null;
}

/** The upstream driver version inside a Debian package version: "535.216.01-1~deb12u1" -> "535.216.01", "1:560.35.03-1" -> "560.35.03". */
export function driverVersionOf(packageVersion: string): string | null {
  return /^(?:\d+:)?(\d{3,}\.\d+(?:\.\d+)?)/.exec(packageVersion)?.[1] ?? null;
}

/** The branch of a driver version: "535.216.01" -> 535. */
export const branchOf = (version: string): number => Number(version.split('.')[0]);

/**
 * PCI devices as `lspci -nn -D` prints them; without pciutils, the same shape from sysfs (the
 * parsers key on [vendor:device]). Plain POSIX sh, so it runs inside the probe and on its own.
 */
export const pciListScript = [
  'if command -v lspci >/dev/null 2>&1; then lspci -nn -D; else',
  '  for d in /sys/bus/pci/devices/*; do',
  '    [ -r "$d/class" ] || continue',
  '    c=$(cat "$d/class"); v=$(cat "$d/vendor"); i=$(cat "$d/device")',
  '    c=${c#0x}; c=${c%??}',
  '    printf \'%s Class [%s]: Unknown vendor [%s:%s]\\n\' "${d##*/}" "$c" "${v#0x}" "${i#0x}"',
  '  done',
  'fi',
].join('\n');
