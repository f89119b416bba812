import { CommandError } from '../core/errors.js';
import { commandFact, osReleaseFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { fromGpuPlan, gpuPresence, pciFact, type GpuPlan } from './nvidia-shared.js';
import { params, port, Type } from './schema.js';
import { localHttpCmd } from './service-shared.js';
import { defineStep, type PlanContext } from './types.js';

export const unitPath = '/etc/systemd/system/zanuri-dcgm-exporter.service';
const unit = 'zanuri-dcgm-exporter.service';
export const defaultImage = 'nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04';

interface Params { port: number; image: string; force: boolean }

/** The driver's version per GPU (the same request as nvidia-container-toolkit's: gathered once); exit 0 only where NVML answers. */
export const driverVersionFact = () => commandFact(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader']);

/** The loaded driver's version, or why there is none yet. */
function driverOf(facts: FactValues): { driver: string | null; why: string } {
  const result = facts.get(driverVersionFact());
  const version = result.stdout.split('\n').map((l) => l.trim()).find((l) => /^\d+(?:\.\d+)+$/.test(l));
  if (result.exitCode === 0 && version) return { driver: version, why: `driver ${version}` };
  return { driver: null, why: result.exitCode === 127 || result.exitCode === -1 ? 'nvidia-smi is not installed yet' : `nvidia-smi finds no GPU with a loaded driver (exit ${result.exitCode})` };
}

function plan(facts: FactValues, p: Params, ctx: PlanContext): GpuPlan {
  const presence = gpuPresence(facts, p.force);
  if (presence.skip) return { skip: presence.skip };
  const gpus = driverOf(facts);
  const unitFile = file(unitPath, ctx.templates.render('dcgm-exporter/zanuri-dcgm-exporter.service', { image: p.image, port: p.port }), {
    notify: [{ unit, op: 'restart' }],
    whyMissing: `no service exports the metrics of the ${presence.gpus} NVIDIA GPU(s) on the bus yet (DCGM exporter, ${p.image})`,
    whyDiffers: `${unitPath} differs from the wanted exporter (${p.image} on :${p.port})`,
  });
  return {
    resources: [
      unitFile,
      command('dcgm-exporter-daemon-reload', unitFile.plan(facts).length ? 'systemd reads the changed zanuri-dcgm-exporter.service' : null, { argv: ['systemctl', 'daemon-reload'] }),
      service(unit),
    ],
    summary: `the DCGM exporter (${p.image}) serves the metrics of ${presence.gpus} NVIDIA GPU(s) on ${p.port} (internal)${gpus.driver ? `, ${gpus.why}` : ` once the driver answers (${gpus.why})`}`,
  };
}

/**
 * NVIDIA's DCGM exporter on GPU hosts: GPU utilisation, memory, temperature, power, ECC and XID
 * errors for Prometheus, as NVIDIA ships it (a container image; DCGM is inside it), run by a systemd
 * unit through Docker with every GPU (the NVIDIA Container Toolkit) on the host's network, so that
 * ufw opens `port` to the internal networks only. On a host without an NVIDIA GPU on the PCI bus
 * it skips and says so. Comes after docker and nvidia-container-toolkit in the gpu-server playbook.
 */
export const dcgmExporter = defineStep({
  id: 'dcgm-exporter',
  title: 'NVIDIA DCGM exporter (GPU metrics)',
  after: ['ufw', 'nvidia-driver', 'docker', 'nvidia-container-toolkit'],
  params: params({
    port: port({ default: 9400, description: 'The port the DCGM exporter serves /metrics on (internal networks only).' }),
    image: Type.String({
      pattern: '^[a-z0-9][a-z0-9._/-]{0,127}(?::[A-Za-z0-9._-]{1,128})?(?:@sha256:[0-9a-f]{64})?$', default: defaultImage, what: 'an image reference like nvcr.io/nvidia/k8s/dcgm-exporter:TAG (optionally @sha256:DIGEST)',
      description: 'The DCGM exporter image (NVIDIA NGC); pin a digest with @sha256:... for a reproducible fleet.',
    }),
    force: Type.Boolean({ default: false, description: 'Install even with no NVIDIA GPU on the bus (an image prepared before its GPUs).' }),
  }),

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'the DCGM exporter\'s GPU metrics, scraped by the monitoring server' }],

  facts: () => [osReleaseFact(), pciFact(), driverVersionFact()],

  ...fromGpuPlan<Params>(plan),

  async verify(ctx, p) {
    const metrics = await ctx.run(localHttpCmd(p.port, '/metrics', 'DCGM_FI_DEV_GPU_TEMP'));
    if (!metrics.ok) throw new CommandError(metrics, `GET http://127.0.0.1:${p.port}/metrics (the DCGM exporter reports no GPU temperature)`);
  },
});
