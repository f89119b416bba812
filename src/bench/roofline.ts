/**
 * The decode roofline: generating one token of a dense model reads every weight once, so a single
 * stream cannot decode faster than memory bandwidth / bytes of weights read per token. The bound
 * ignores the KV cache and kernel overheads, so real engines reach some fraction of it.
 */
export interface GpuSpec {
  name: string;
  /** Matched against the GPU's marketing name from nvidia-smi (case-insensitive). */
  match: RegExp;
  bandwidthGBs: number;
  vramGB: number;
  source: string;
}

/** Peak memory bandwidth from NVIDIA's product pages and datasheets. Order matters: specific before general. */
export const gpuSpecs: readonly GpuSpec[] = [
  { name: 'H200 (SXM, 141 GB HBM3e)', match: /H200/i, bandwidthGBs: 4800, vramGB: 141, source: 'NVIDIA H200 Tensor Core GPU datasheet, H200 SXM and H200 NVL columns: 141 GB HBM3e, 4.8 TB/s' },
  { name: 'H100 NVL (94 GB)', match: /H100 NVL/i, bandwidthGBs: 3900, vramGB: 94, source: 'NVIDIA H100 datasheet, H100 NVL column: 3.9 TB/s' },
  { name: 'H100 PCIe (80 GB HBM2e)', match: /H100 PCIe/i, bandwidthGBs: 2000, vramGB: 80, source: 'NVIDIA H100 datasheet, H100 PCIe column: 2 TB/s' },
  { name: 'H100 SXM (80 GB HBM3)', match: /H100/i, bandwidthGBs: 3350, vramGB: 80, source: 'NVIDIA H100 datasheet, H100 SXM column: 3.35 TB/s' },
  { name: 'A100 80GB PCIe', match: /A100.*PCIe.*80|A100 80GB PCIe/i, bandwidthGBs: 1935, vramGB: 80, source: 'NVIDIA A100 datasheet, A100 80GB PCIe: 1,935 GB/s' },
  { name: 'A100 80GB SXM', match: /A100.*80/i, bandwidthGBs: 2039, vramGB: 80, source: 'NVIDIA A100 datasheet, A100 80GB SXM: 2,039 GB/s' },
  { name: 'A100 40GB', match: /A100/i, bandwidthGBs: 1555, vramGB: 40, source: 'NVIDIA A100 datasheet, A100 40GB PCIe and SXM columns: 1,555 GB/s' },
  { name: 'L40S', match: /L40S/i, bandwidthGBs: 864, vramGB: 48, source: 'NVIDIA L40S datasheet: 864 GB/s' },
  { name: 'L40', match: /L40\b/i, bandwidthGBs: 864, vramGB: 48, source: 'NVIDIA L40 datasheet: 864 GB/s' },
  { name: 'L4', match: /\bL4\b/i, bandwidthGBs: 300, vramGB: 24, source: 'NVIDIA L4 datasheet: 300 GB/s' },
  { name: 'A10', match: /\bA10\b/i, bandwidthGBs: 600, vramGB: 24, source: 'NVIDIA A10 datasheet: 600 GB/s' },
  { name: 'T4', match: /\bT4\b/i, bandwidthGBs: 320, vramGB: 16, source: 'NVIDIA T4 datasheet: 320+ GB/s' },
  { name: 'V100', match: /V100/i, bandwidthGBs: 900, vramGB: 32, source: 'NVIDIA V100 datasheet (SXM2): 900 GB/s' },
  { name: 'RTX 6000 Ada', match: /RTX 6000 Ada/i, bandwidthGBs: 960, vramGB: 48, source: 'NVIDIA RTX 6000 Ada datasheet: 960 GB/s' },
  { name: 'RTX A6000', match: /RTX A6000/i, bandwidthGBs: 768, vramGB: 48, source: 'NVIDIA RTX A6000 datasheet: 768 GB/s' },
  { name: 'RTX 4090', match: /RTX 4090/i, bandwidthGBs: 1008, vramGB: 24, source: 'NVIDIA GeForce RTX 4090 specifications: 1,008 GB/s (21 Gbps GDDR6X, 384-bit)' },
  { name: 'RTX 3090 Ti', match: /RTX 3090 Ti/i, bandwidthGBs: 1008, vramGB: 24, source: 'NVIDIA GeForce RTX 3090 Ti specifications: 1,008 GB/s' },
  { name: 'RTX 3090', match: /RTX 3090/i, bandwidthGBs: 936, vramGB: 24, source: 'NVIDIA GeForce RTX 3090 specifications: 936 GB/s (19.5 Gbps GDDR6X, 384-bit)' },
];

export function gpuSpec(name: string | null): GpuSpec | null {
  return name === null ? null : gpuSpecs.find((g) => g.match.test(name)) ?? null;
}

/** Effective bits per weight of common formats (llama.cpp's own figures for its k-quants). */
export const bitsPerWeight: Readonly<Record<string, number>> = {
  f32: 32, f16: 16, bf16: 16, fp16: 16, fp8: 8, int8: 8, q8_0: 8.5, q6_k: 6.56, q5_k_m: 5.69, q5_0: 5.5, q4_k_m: 4.85, q4_k_s: 4.58,
  q4_0: 4.5, awq: 4.25, gptq: 4.25, int4: 4.5, q3_k_m: 3.91, q2_k: 2.96,
};

export interface ModelSize {
  /** Parameters in billions (all experts for a mixture of experts). */
  params: number;
  /** Parameters read per token in billions (active experts); equals params for dense models. */
  activeParams: number;
  quantization: string;
}

/** "7B", "8x7B", "70.6B", "85M" -> billions; Ollama's parameter_size uses this form. */
export function parseParamCount(text: string): number | null {
  const moe = /^(\d+)x(\d+(?:\.\d+)?)B$/i.exec(text.trim());
  if (moe) return Number(moe[1]) * Number(moe[2]);
  const match = /^(\d+(?:\.\d+)?)\s*([BMK])$/i.exec(text.trim());
  if (!match) return null;
  const scale = { B: 1, M: 1e-3, K: 1e-6 }[(match[2] as string).toUpperCase() as 'B' | 'M' | 'K'];
  return Number(match[1]) * scale;
}

export interface Roofline {
  gpu: string | null;
  bandwidthGBs: number | null;
  vramGB: number | null;
  weightsGB: number;
  bytesPerTokenGB: number;
  /** Whether the weights fit the GPUs' memory (with 10% for KV cache and runtime); null without GPU data. */
  fits: boolean | null;
  /** Single-stream decode upper bound, tokens/s; null when bandwidth is unknown. */
  decodeBoundTokensPerS: number | null;
  source: string | null;
}

export function roofline(model: ModelSize, gpuName: string | null, gpuCount = 1, vramBytes: number | null = null): Roofline {
  const bits = bitsPerWeight[model.quantization.toLowerCase()] ?? null;
  const spec = gpuSpec(gpuName);
  const weightsGB = bits === null ? NaN : (model.params * 1e9 * bits) / 8 / 1e9;
  const bytesPerTokenGB = bits === null ? NaN : (model.activeParams * 1e9 * bits) / 8 / 1e9;
  const vramGB = vramBytes !== null ? (vramBytes * gpuCount) / 1e9 : spec ? spec.vramGB * gpuCount : null;
  const bandwidth = spec ? spec.bandwidthGBs * gpuCount : null;
  return {
    gpu: spec?.name ?? gpuName,
    bandwidthGBs: bandwidth,
    vramGB,
    weightsGB,
    bytesPerTokenGB,
    fits: vramGB === null || Number.isNaN(weightsGB) ? null : weightsGB * 1.1 <= vramGB,
    decodeBoundTokensPerS: bandwidth === null || Number.isNaN(bytesPerTokenGB) ? null : bandwidth / bytesPerTokenGB,
    source: spec?.source ?? null,
  };
}
