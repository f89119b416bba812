/**
 * Numbers the engine and the CLI's flags share. Nothing is imported here, so cli/main.ts can read
 * them for its --help text without loading any of the engine.
 */

/** Hosts checked or provisioned at once when the operator does not say. */
export const defaultConcurrency = 16;

/** The model server as the host itself sees it (Ollama's default port). */
export const defaultBenchEndpoint = 'http://127.0.0.1:11434';

/** What each request and each load level of a benchmark asks of the model server. */
const load = {
  maxTokens: 128,
  promptWords: 64,
  requestsPerLevel: 20,
  levelMaxMs: 120_000,
  timeoutMs: 300_000,
  /** A measured request with no token this long failed (queueing at high concurrency included). */
  firstTokenMs: 60_000,
  /** Tokens that stop this long mean a stalled server: reported in seconds, not minutes. */
  stallMs: 10_000,
  /** A closed load level measures at least this many times its concurrency, so it holds it. */
  roundsPerLevel: 3,
} as const;

/** `zanuri bench`, unless flags say otherwise. Concurrency 1 is the single-stream run. */
export const benchDefaults = { ...load, warmup: 2, singleStreamRequests: 5, concurrency: [1, 4] } as const;

/** The benchmark after provisioning: a shorter start; its load levels come from the profile's targets. */
export const provisionBenchDefaults = { ...load, warmup: 1, singleStreamRequests: 3 } as const;

/** The parts of a profile's requirements the GPU minimums are read from (structurally a profiles/types Requirement). */
export interface GpuRequirement { check: string; level?: string; minVersion?: string }

/**
 * The profile's GPU minimums as the GPU steps' parameters, for `provision --profile`: the driver branch
 * (gpu.driver, e.g. "535") becomes nvidia-driver.branch and the branch fabric-manager and cuda-toolkit
 * plan for; the CUDA version (gpu.cuda, e.g. "12.1") becomes cuda-toolkit.minimum. A playbook that asks
 * for more keeps its own (a minimum never lowers a choice); only required minimums count.
 */
export function gpuProfileParams(requirements: readonly GpuRequirement[], playbook: Record<string, Record<string, unknown>> = {}): Record<string, Record<string, unknown>> {
  const required = requirements.filter((r) => (r.level ?? 'required') === 'required');
  const driver = required.find((r) => r.check === 'gpu.driver')?.minVersion;
  const cuda = required.find((r) => r.check === 'gpu.cuda')?.minVersion;
  const params: Record<string, Record<string, unknown>> = {};
  const branchOf = (v: string | undefined): number | null => (v && /^\d{3}(\.|$)/.test(v) ? Number(v.slice(0, 3)) : null);
  const atLeast = (current: unknown, minimum: number): number => (typeof current === 'number' && current > minimum ? current : minimum);
  const branch = branchOf(driver);
  if (branch !== null) {
    params['nvidia-driver'] = { branch: atLeast(playbook['nvidia-driver']?.['branch'], branch) };
    params['fabric-manager'] = { branch: atLeast(playbook['fabric-manager']?.['branch'], branch) };
    params['cuda-toolkit'] = { driverBranch: atLeast(playbook['cuda-toolkit']?.['driverBranch'], branch) };
  }
  const version = cuda && /^\d{2}\.\d{1,2}$/.test(cuda) ? cuda : null;
  if (version !== null) {
    const current = playbook['cuda-toolkit']?.['minimum'];
    const newer = (a: string, b: string): boolean => { const [am = 0, an = 0] = a.split('.').map(Number); const [bm = 0, bn = 0] = b.split('.').map(Number); return am > bm || (am === bm && an > bn); };
    params['cuda-toolkit'] = { ...params['cuda-toolkit'], minimum: typeof current === 'string' && /^\d{2}\.\d{1,2}$/.test(current) && newer(current, version) ? current : version };
  }
  return params;
}
