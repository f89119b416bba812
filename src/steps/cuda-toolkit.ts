import { ConfigError } from '../core/errors.js';
import { osReleaseFact, type FactRequest, type FactValues } from '../facts/state.js';
import { file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import { RefusedError, checkRepository, cudaRepository, cudaSourcesFact, distroOf, gpuPresence, nvidiaStateFact, pciFact, repositoryParams, type RepositoryParams, fromGpuPlan, type GpuPlan } from './nvidia-shared.js';
import { params, Type } from './schema.js';
import { defineStep, type PlanContext } from './types.js';

export const profilePath = '/etc/profile.d/zanuri-cuda.sh';

interface Params extends RepositoryParams {
  minimum: string;
  version: string | null;
  driverBranch: number;
  force: boolean;
}

/**
 * The oldest driver branch each CUDA major runs on, from NVIDIA's CUDA compatibility table (minor version
 * compatibility: any 12.x toolkit runs on a >= 525 driver, any 13.x on >= 580).
 */
export const driverFloor: Readonly<Record<number, number>> = { 11: 450, 12: 525, 13: 580 };

export type CudaVersion = readonly [number, number];
const parse = (v: string): CudaVersion => v.split('.').map(Number) as unknown as CudaVersion;
const show = ([major, minor]: CudaVersion): string => `${major}.${minor}`;
const atLeast = (a: CudaVersion, b: CudaVersion): boolean => a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]);

/** The cuda-toolkit-X-Y packages apt can install (`apt-cache pkgnames` reads only the lists: no lock, no network). */
export function toolkitsFact(): FactRequest<CudaVersion[]> {
  return {
    key: 'cuda-toolkits',
    script: 'apt-cache pkgnames cuda-toolkit- 2>/dev/null; true',
    parse: (output) => [...output.matchAll(/^cuda-toolkit-(\d+)-(\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])] as const)
      .sort((a, b) => b[0] - a[0] || b[1] - a[1]),
  };
}

/** The CUDA version to install: the one asked for, else the newest the repository has that the driver runs and that meets the minimum. */
export function chooseCuda(p: Pick<Params, 'minimum' | 'version'>, driverBranch: number, available: readonly CudaVersion[], driverWhat: string): { version: CudaVersion; why: string } {
  const minimum = parse(p.minimum);
  const runs = (v: CudaVersion): boolean => driverBranch >= (driverFloor[v[0]] ?? Infinity);
  const table = 'CUDA 12.x needs driver >= 525 and 13.x >= 580 (NVIDIA\'s CUDA compatibility table)';
  if (!runs(minimum)) {
    throw new RefusedError(`cuda-toolkit: the minimum CUDA ${p.minimum} cannot run on ${driverWhat} (branch ${driverBranch}): ${table}; nothing was changed`, {
      hint: `raise nvidia-driver.branch to ${driverFloor[minimum[0]] ?? 'a newer branch'} or lower cuda-toolkit.minimum`,
    });
  }
  if (p.version) {
    const wanted = parse(p.version);
    if (!atLeast(wanted, minimum)) throw new ConfigError(`cuda-toolkit: version ${p.version} is below the minimum ${p.minimum}`);
    if (!runs(wanted)) throw new RefusedError(`cuda-toolkit: CUDA ${p.version} cannot run on ${driverWhat}: ${table}; nothing was changed`, { hint: `raise nvidia-driver.branch to ${driverFloor[wanted[0]] ?? 'a newer branch'}` });
    return { version: wanted, why: `CUDA ${p.version} as asked; ${driverWhat} runs it` };
  }
  const best = available.find((v) => runs(v) && atLeast(v, minimum));
  if (best) return { version: best, why: `CUDA ${show(best)}: the newest in the repository that ${driverWhat} runs (minimum ${p.minimum})` };
  return { version: minimum, why: `CUDA ${p.minimum}, the minimum (the repository's packages are read once it is configured)` };
}

function plan(facts: FactValues, p: Params, ctx: PlanContext): GpuPlan {
  const presence = gpuPresence(facts, p.force);
  if (presence.skip) return { skip: presence.skip };
  const distro = distroOf(facts.get(osReleaseFact()));
  const driver = facts.get(nvidiaStateFact()).driverVersion;
  const branch = driver ? Number(driver.split('.')[0]) : p.driverBranch;
  const { version, why } = chooseCuda(p, branch, facts.get(toolkitsFact()), driver ? `driver ${driver}` : `the planned driver branch ${p.driverBranch}`);
  const dotted = show(version);
  const name = `cuda-toolkit-${version[0]}-${version[1]}`;
  return {
    resources: [
      ...cudaRepository(p, distro.name, facts, ctx, 'cuda-toolkit'),
      packages([name], { state: 'held', why: `${name} not installed: ${why}` }),
      file(profilePath, ctx.templates.render('nvidia/cuda-path.sh', { version: dotted }), { whyMissing: `login shells do not find nvcc (/usr/local/cuda-${dotted}/bin is not on the PATH)` }),
    ],
    summary: `${name} installed and held (${why}); /usr/local/cuda-${dotted}/bin on the PATH`,
  };
}

/** The CUDA toolkit from NVIDIA's repository, its version chosen from the installed (or planned) driver; nvcc on the PATH. */
export const cudaToolkit = defineStep({
  id: 'cuda-toolkit',
  title: 'CUDA toolkit',
  after: ['nvidia-driver', 'fabric-manager'],
  params: params({
    minimum: Type.String({ pattern: '^\\d{2}\\.\\d{1,2}$', what: 'a CUDA version like 12.1', default: '12.1', description: 'The oldest CUDA the host must have (the profiles: 12.1); the plan says why when the driver cannot run it.' }),
    version: Type.Union([Type.Null(), Type.String({ pattern: '^\\d{2}\\.\\d{1,2}$', what: 'a CUDA version like 12.4' })], { default: null, description: 'An exact CUDA version; null: the newest in the repository that the driver runs.' }),
    driverBranch: Type.Integer({ minimum: 390, maximum: 999, default: 535, description: 'The driver branch planned for when no driver is installed yet (nvidia-driver.branch); an installed driver decides itself.' }),
    force: Type.Boolean({ default: false, description: 'Install even with no NVIDIA GPU on the bus (compiling without a GPU, or a card still to come).' }),
    ...repositoryParams,
  }),

  check: (p) => checkRepository(p, 'cuda-toolkit'),

  facts: () => [osReleaseFact(), pciFact(), nvidiaStateFact(), cudaSourcesFact(), toolkitsFact()],

  ...fromGpuPlan<Params>(plan),

  /** A login shell finds nvcc, and it is at least the minimum. */
  async verify(ctx, p) {
    const nvcc = await ctx.run({ argv: ['sh', '-c', `. ${profilePath} && nvcc --version`] });
    const release = /release (\d+\.\d+)/.exec(nvcc.stdout)?.[1];
    if (!nvcc.ok || !release) throw new ConfigError(`cuda-toolkit: nvcc --version in a login shell failed: ${(nvcc.stderr || nvcc.stdout).trim().split('\n').at(-1) ?? `exit ${nvcc.exitCode}`}`);
    if (!atLeast(parse(release), parse(p.minimum))) throw new ConfigError(`cuda-toolkit: nvcc reports CUDA ${release}, below the minimum ${p.minimum}`);
  },
});

