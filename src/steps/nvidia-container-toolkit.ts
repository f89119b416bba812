import { CommandError, ConfigError } from '../core/errors.js';
import { commandFact, fileFact, type FactValues } from '../facts/state.js';
import { aptRepository, keyringPath } from '../resources/apt-repository.js';
import { command } from '../resources/command.js';
import { packages } from '../resources/packages.js';
import type { Resource } from '../resources/types.js';
import { archFact, armoredKey, checkArmoredKey, daemonJsonPath, nvidiaRuntimePath } from './docker-shared.js';
import { params, Type, url, type Static } from './schema.js';
import { defineStep } from './types.js';

const id = 'nvidia-container-toolkit';
export const cdiSpecPath = '/etc/cdi/nvidia.yaml';
/** The driver's version per GPU; exit 0 only where a GPU and a loaded driver answer (NVML). */
export const driverVersionFact = () => commandFact(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader']);
const cdiSpec = fileFact(cdiSpecPath);

const schema = params({
  repositoryUrl: Type.Union([url(), Type.Null()], {
    default: null,
    description: 'The toolkit\'s apt repository without the architecture; default NVIDIA\'s https://nvidia.github.io/libnvidia-container/stable/deb (a flat repository per architecture).',
  }),
  repositoryKey: armoredKey('NVIDIA\'s signing key for the toolkit repository, ASCII-armored; null: the shipped copy of nvidia.github.io/libnvidia-container/gpgkey (templates/docker/nvidia-container-toolkit-key.asc, fingerprint C95B 321B 61E8 8C18 09C4 F759 DDCA E044 F796 ECB0). E.g. --set nvidia-container-toolkit.repositoryKey=@nvidia.asc.'),
  cdi: Type.Boolean({ default: true, description: 'Generate the CDI spec (/etc/cdi/nvidia.yaml, nvidia-ctk cdi generate) where a GPU and its driver answer; skipped, with the reason, elsewhere.' }),
  verifyImage: Type.String({
    pattern: '^[a-z0-9][a-z0-9._/-]{0,127}(?::[A-Za-z0-9._-]{1,128})?$', what: 'an image reference like ubuntu:24.04',
    default: 'ubuntu:24.04', description: 'Where a GPU answers, a container of this image must run nvidia-smi through the NVIDIA runtime (the toolkit injects nvidia-smi).',
  }),
});

type ToolkitParams = Omit<Static<typeof schema>, 'repositoryKey'> & { repositoryKey: string | null };

const defaultUrl = 'https://nvidia.github.io/libnvidia-container/stable/deb';

interface Gpus { present: boolean; driver: string | null; why: string }

/** Where the driver answers, its version; otherwise why the GPU parts are skipped. */
export function gpusOf(facts: FactValues): Gpus {
  const result = facts.get(driverVersionFact());
  const versions = result.stdout.split('\n').map((l) => l.trim()).filter((l) => /^\d+(?:\.\d+)+$/.test(l));
  if (result.exitCode === 0 && versions.length) return { present: true, driver: versions[0] ?? null, why: `${versions.length} GPU(s), driver ${versions[0]}` };
  const why = result.exitCode === 127 || result.exitCode === -1 ? 'nvidia-smi is not installed (no NVIDIA driver)' : `nvidia-smi finds no GPU with a loaded driver (exit ${result.exitCode})`;
  return { present: false, driver: null, why };
}

/** A CDI spec names the driver's libraries by version (libcuda.so.535.183.01): a spec of another driver is stale. */
function cdiNeeded(facts: FactValues, gpus: Gpus): string | null {
  if (!gpus.present || gpus.driver === null) return null;
  const spec = facts.get(cdiSpec);
  if (!spec.exists) return `${cdiSpecPath} does not exist: containers cannot ask for GPUs by CDI name (nvidia.com/gpu=all)`;
  return spec.content?.includes(`.so.${gpus.driver}`) ? null : `${cdiSpecPath} was generated for another driver than ${gpus.driver}`;
}

/**
 * The NVIDIA Container Toolkit from NVIDIA's repository (deb822, its own keyring). The Docker
 * runtime entry is not written by `nvidia-ctk runtime configure` but by the docker step, as part
 * of the daemon.json it plans (so the dry run shows it): it adds the entry whenever this step is
 * selected or the runtime is installed. The CDI spec is generated where a GPU and its driver
 * answer; without one that part is skipped and the step says why.
 */
export const nvidiaContainerToolkit = defineStep({
  id,
  title: 'NVIDIA Container Toolkit',
  after: ['docker', 'nvidia-driver'],
  params: schema,

  check(raw): ToolkitParams {
    return { ...raw, repositoryKey: checkArmoredKey(id, 'repositoryKey', raw.repositoryKey) };
  },

  facts: () => [archFact(), driverVersionFact(), cdiSpec],

  resources(facts, p, { templates }) {
    const arch = facts.get(archFact()).stdout.trim() || 'amd64';
    const gpus = gpusOf(facts);
    const resources: Resource[] = [
      aptRepository('nvidia-container-toolkit', {
        key: p.repositoryKey === null ? templates.render('docker/nvidia-container-toolkit-key.asc', {}) : templates.render('docker/repository-key.asc', { key: p.repositoryKey }),
        sources: templates.render('docker/nvidia-container-toolkit.sources', { url: `${p.repositoryUrl ?? defaultUrl}/${arch}`, keyring: keyringPath('nvidia-container-toolkit') }),
      }),
      packages(['nvidia-container-toolkit']),
    ];
    if (p.cdi) {
      resources.push(command('nvidia-ctk cdi generate', cdiNeeded(facts, gpus), { argv: ['timeout', '120', 'nvidia-ctk', 'cdi', 'generate', `--output=${cdiSpecPath}`] }, {
        describe: gpus.present ? `${cdiSpecPath} is generated for driver ${gpus.driver}` : `no CDI spec: ${gpus.why}`,
      }));
    }
    return resources;
  },

  converged(p, facts) {
    const gpus = gpusOf(facts);
    const cdi = !p.cdi ? 'CDI spec not wanted' : gpus.present ? `CDI spec for driver ${gpus.driver}` : `CDI spec skipped: ${gpus.why}`;
    return `nvidia-container-toolkit is installed from ${p.repositoryUrl ?? defaultUrl}, docker has the nvidia runtime (${daemonJsonPath}); ${cdi}`;
  },

  /**
   * dockerd must list the nvidia runtime (the docker step wrote it; its restart happened there);
   * where a GPU answers, a container must run nvidia-smi through it.
   */
  async verify(ctx, p) {
    const runtimes = await ctx.run({ argv: ['timeout', '60', 'docker', 'info', '--format', '{{json .Runtimes}}'] });
    if (!runtimes.ok) throw new CommandError(runtimes, 'docker info (is the docker step selected and dockerd running?)');
    if (!runtimes.stdout.includes(`"nvidia"`)) throw new ConfigError(`${id}: dockerd does not list the nvidia runtime: select the docker step, which writes it into ${daemonJsonPath}`);
    const exe = await ctx.run({ argv: ['test', '-x', nvidiaRuntimePath] });
    if (!exe.ok) throw new ConfigError(`${id}: ${nvidiaRuntimePath} is missing after the install`);
    const gpu = await ctx.run({ argv: ['nvidia-smi', '-L'] });
    if (!gpu.ok) return;
    const smi = await ctx.run({ argv: ['timeout', '600', 'docker', 'run', '--rm', '--runtime=nvidia', '--gpus', 'all', '--', p.verifyImage, 'nvidia-smi', '-L'] });
    if (!smi.ok || !/^GPU \d+:/m.test(smi.stdout)) throw new CommandError(smi, `docker run ${p.verifyImage} nvidia-smi (a container does not see the GPU)`);
  },
});
