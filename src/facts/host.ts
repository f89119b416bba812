import type { Transport } from '../core/types.js';
import { CommandError } from '../core/errors.js';
import type { HostFacts } from './types.js';
import { composeProbe, splitSections, type ProbeSection } from './probe.js';
import { osFacts, osProbe } from './os.js';
import { cpuFacts, cpuProbe } from './cpu.js';
import { memoryFacts, memoryProbe } from './memory.js';
import { gpuFacts, pciListScript } from './gpu.js';
import { diskFacts } from './disks.js';
import { parseDf, filesystemsProbe } from './filesystems.js';
import { parseNics, networkProbe } from './network.js';
import { parseFirmware, firmwareProbe } from './firmware.js';
import { parseSoftware, softwareProbe } from './software.js';
import { parseRebootRequired, rebootProbe } from './reboot.js';

const gpuProbe: ProbeSection[] = [
  { name: 'nvidia-smi', script: 'has nvidia-smi && nvidia-smi -q' },
  { name: 'lspci', script: pciListScript },
];

const diskProbe: ProbeSection[] = [
  { name: 'lsblk', script: 'has lsblk && lsblk -J -b -o NAME,KNAME,PKNAME,TYPE,SIZE,ROTA,TRAN,MODEL' },
  { name: 'mdstat', script: 'cat /proc/mdstat' },
];

export const hostProbeSections: readonly ProbeSection[] = [
  ...osProbe, ...cpuProbe, ...memoryProbe, ...gpuProbe, ...diskProbe,
  ...filesystemsProbe, ...networkProbe, ...firmwareProbe, ...softwareProbe, ...rebootProbe,
];

export const hostProbeScript = composeProbe(hostProbeSections);

/** Pure: probe output -> facts. Missing sections read as empty, which every parser maps to unknown. */
export function parseHostFacts(probeOutput: string): HostFacts {
  const sections = splitSections(probeOutput);
  const get = (name: string): string => sections.get(name) ?? '';
  const os = osFacts(get('os-release'), get('uname'), get('init'));
  return {
    os,
    cpu: cpuFacts(get('lscpu'), get('cpuinfo'), os.arch),
    memory: memoryFacts(get('meminfo'), get('dmidecode-memory'), get('edac')),
    gpus: gpuFacts(get('nvidia-smi'), get('lspci')),
    disks: diskFacts(get('lsblk'), get('mdstat')),
    filesystems: parseDf(get('df')),
    nics: parseNics(get('nics')),
    firmware: parseFirmware(get('firmware')),
    software: parseSoftware(get('software')),
    reboot: parseRebootRequired(get('reboot-required')),
  };
}

/** Reads every hardware and OS fact of the host behind `transport` in one round trip. */
export async function gatherHostFacts(transport: Transport, options?: { timeoutMs?: number }): Promise<HostFacts> {
  const result = await transport.run({ argv: ['sh', '-c', hostProbeScript] }, { timeoutMs: options?.timeoutMs ?? 60_000 });
  if (!result.stdout.includes('@@zanuri-section:end@@')) throw new CommandError(result, 'the hardware probe');
  return parseHostFacts(result.stdout);
}
