import type { MemoryFacts } from './types.js';
import type { ProbeSection } from './probe.js';

export const memoryProbe: ProbeSection[] = [
  { name: 'meminfo', script: "grep -E '^MemTotal:' /proc/meminfo" },
  { name: 'dmidecode-memory', script: 'asroot dmidecode -t 16' },
  // A memory controller under EDAC exists only when the platform runs ECC and the driver bound to it.
  { name: 'edac', script: 'ls /sys/devices/system/edac/mc' },
];

export function parseMemTotal(meminfo: string): number | null {
  const match = /^MemTotal:\s+(\d+)\s*kB/m.exec(meminfo);
  return match?.[1] ? Number(match[1]) * 1024 : null;
}

/**
 * ECC from SMBIOS type 16 (Physical Memory Array). Only arrays used as system memory count;
 * "None" means no ECC, "Unknown"/"Other" tell nothing. Returns null when no array was readable.
 */
export function parseDmidecodeEcc(text: string): boolean | null {
  let answer: boolean | null = null;
  for (const block of text.split(/\n\s*\n/)) {
    if (!/Physical Memory Array/.test(block)) continue;
    const use = /^\s*Use:\s*(.+)$/m.exec(block)?.[1]?.trim();
    if (use && use !== 'System Memory') continue;
    const correction = /^\s*Error Correction Type:\s*(.+)$/m.exec(block)?.[1]?.trim();
    if (!correction || correction === 'Unknown' || correction === 'Other') continue;
    const ecc = /ECC|CRC/.test(correction);
    answer = answer === null ? ecc : answer && ecc;
  }
  return answer;
}

export function memoryFacts(meminfo: string, dmidecode: string, edac: string): MemoryFacts {
  const totalBytes = parseMemTotal(meminfo);
  if (/^mc\d+$/m.test(edac)) return { totalBytes, ecc: true, eccSource: 'edac' };
  const ecc = parseDmidecodeEcc(dmidecode);
  return { totalBytes, ecc, eccSource: ecc === null ? null : 'dmidecode' };
}
