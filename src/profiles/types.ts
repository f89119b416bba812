/** A tiered requirement profile, as written in profiles/*.yaml and described by profiles/schema.json. */
export type Level = 'required' | 'recommended';

interface Base {
  id: string;
  level: Level;
  source: string;
  note?: string;
}

export interface GpuOption {
  family?: string;
  minVramGB?: number;
}

export type Requirement = Base &
  (
    | { check: 'cpu.cores' | 'cpu.threads'; min: number }
    | { check: 'cpu.arch'; oneOf: string[] }
    | { check: 'memory.total'; minGB: number }
    | { check: 'memory.ecc' }
    | { check: 'gpu'; count?: number; anyOf?: GpuOption[]; vendor?: 'nvidia' }
    | { check: 'gpu.driver' | 'gpu.cuda' | 'kernel'; minVersion: string }
    | { check: 'disk'; minGB: number; kind?: 'nvme' | 'ssd' | 'any'; raid?: 'raid1' | 'raid5' | 'raid6' | 'raid10' }
    | { check: 'filesystem.free'; path: string; minGB: number }
    | { check: 'os'; anyOf: Array<{ id: string; minVersion?: string }> }
    | { check: 'nic.speed'; minMbps: number }
    | { check: 'software'; name: string; minVersion?: string }
  );

export type Check = Requirement['check'];

export interface Port {
  port: number;
  protocol: 'tcp' | 'udp';
  service: string;
  access: 'public' | 'internal' | 'admin' | 'vpn';
  source: string;
}

export interface BenchmarkTarget {
  id: string;
  model: string;
  metric: string;
  min?: number;
  max?: number;
  concurrency?: number;
  /** Weight format the target assumes (default q4_k_m). */
  quantization?: string;
  /** Billions of parameters read per token, for mixtures of experts. */
  activeParams?: number;
  mode?: 'single-stream' | 'aggregate';
  inputTokens?: number;
  outputTokens?: number;
  /** The GPU the seed names for the target. */
  hardware?: string;
  note?: string;
  source: string;
}

export interface Profile {
  id: string;
  system: string;
  tier: string;
  rank: number;
  title: string;
  source: string;
  extends?: string;
  note?: string;
  requirements: Requirement[];
  ports?: Port[];
  postgresql?: { version?: string; settings: Record<string, string | number>; source: string };
  benchmarks?: BenchmarkTarget[];
  /** The playbook provision runs for this profile. */
  playbook?: string;
  /** A directory of template overrides, relative to the profile file. */
  templates?: string;
  /** The file it was read from (not part of the YAML). */
  file: string;
}
