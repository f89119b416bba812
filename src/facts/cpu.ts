import type { CpuFacts } from './types.js';
import type { ProbeSection } from './probe.js';

export const cpuProbe: ProbeSection[] = [
  { name: 'lscpu', script: 'has lscpu && lscpu -J' },
  { name: 'cpuinfo', script: "grep -E '^(processor|model name|physical id|core id|cpu cores)[[:space:]]*:' /proc/cpuinfo" },
];

interface LscpuEntry {
  field?: string;
  data?: string | null;
  children?: LscpuEntry[];
}

/** lscpu -J is flat when piped and nested under `children` on a TTY; flatten both to field -> data. */
export function parseLscpuJson(json: string): Map<string, string> {
  const fields = new Map<string, string>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return fields;
  }
  const walk = (entries: unknown): void => {
    if (!Array.isArray(entries)) return;
    for (const entry of entries as LscpuEntry[]) {
      if (typeof entry?.field === 'string' && typeof entry.data === 'string') {
        const key = entry.field.replace(/:$/, '');
        if (!fields.has(key)) fields.set(key, entry.data);
      }
      walk(entry?.children);
    }
  };
  walk((parsed as { lscpu?: unknown })?.lscpu);
  return fields;
}

const positiveInt = (value: string | undefined): number | null => {
  const n = value === undefined ? NaN : Number.parseInt(value, 10);
  return Number.isFinite(n) && n > 0 ? n : null;
};

/** Fallback when lscpu is missing: count processors and distinct (physical id, core id) pairs. */
export function parseCpuinfo(text: string): Omit<CpuFacts, 'arch'> {
  let threads = 0;
  let model: string | null = null;
  const cores = new Set<string>();
  const sockets = new Set<string>();
  let physical = '0';
  for (const line of text.split('\n')) {
    const [rawKey, ...rest] = line.split(':');
    const key = rawKey?.trim();
    const value = rest.join(':').trim();
    if (key === 'processor') threads += 1;
    else if (key === 'model name' && model === null) model = value;
    else if (key === 'physical id') {
      physical = value;
      sockets.add(value);
    } else if (key === 'core id') cores.add(`${physical}:${value}`);
  }
  return {
    model,
    sockets: sockets.size || (threads ? 1 : null),
    cores: cores.size || (threads || null),
    threads: threads || null,
  };
}

export function cpuFacts(lscpuJson: string, cpuinfo: string, unameArch: string | null): CpuFacts {
  const f = parseLscpuJson(lscpuJson);
  const fallback = parseCpuinfo(cpuinfo);
  const threads = positiveInt(f.get('CPU(s)')) ?? fallback.threads;
  const sockets = positiveInt(f.get('Socket(s)')) ?? positiveInt(f.get('Cluster(s)')) ?? fallback.sockets;
  const perSocket = positiveInt(f.get('Core(s) per socket')) ?? positiveInt(f.get('Core(s) per cluster'));
  const cores = perSocket !== null && sockets !== null ? perSocket * sockets : fallback.cores;
  return {
    model: f.get('Model name') ?? fallback.model,
    arch: f.get('Architecture') ?? unameArch,
    sockets,
    cores,
    threads,
  };
}
