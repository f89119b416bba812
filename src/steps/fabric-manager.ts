import { CommandError, ConfigError } from '../core/errors.js';
import { driverVersionOf, nvidiaPci } from '../facts/gpu.js';
import { osReleaseFact, type FactValues } from '../facts/state.js';
import { aptInstallCmd } from '../resources/apt.js';
import { command } from '../resources/command.js';
import { packages } from '../resources/packages.js';
import { service } from '../resources/service.js';
import type { Resource } from '../resources/types.js';
import { checkRepository, cudaRepository, cudaSourcesFact, distroOf, nvidiaStateFact, pciFact, repositoryParams, type RepositoryParams, fromGpuPlan, type GpuPlan } from './nvidia-shared.js';
import { params, Type } from './schema.js';
import { defineStep, type PlanContext } from './types.js';

interface Params extends RepositoryParams {
  branch: number;
  force: boolean;
}

export const fabricManagerUnit = 'nvidia-fabricmanager.service';
const packageOf = (branch: number): string => `nvidia-fabricmanager-${branch}`;

function plan(facts: FactValues, p: Params, ctx: PlanContext): GpuPlan {
  if (!facts.get(osReleaseFact())['ID']) return { skip: 'the host\'s OS is not known (no /etc/os-release)' };
  const pci = facts.get(pciFact());
  if (!pci.nvswitches.length && !p.force) {
    return { skip: 'no NVSwitch on the PCI bus (NVIDIA bridge, class 0680): Fabric Manager is only for HGX/DGX baseboards' };
  }
  const distro = distroOf(facts.get(osReleaseFact()));
  const state = facts.get(nvidiaStateFact());
  const driver = state.driverVersion;
  const branch = driver ? Number(driver.split('.')[0]) : p.branch;
  const name = packageOf(branch);
  const installed = state.installed.find((i) => i.name === name);
  const installedVersion = installed ? driverVersionOf(installed.version) : null;
  const resources: Resource[] = [];
  // Ubuntu's archive carries nvidia-fabricmanager-<branch> beside its drivers; Debian's does not: NVIDIA's repository does.
  if (distro.family !== 'ubuntu') resources.push(...cudaRepository(p, distro.name, facts, ctx, 'fabric-manager'));
  if (driver) {
    // Exactly the driver's version: a Fabric Manager of another version refuses to start, and CUDA cannot initialise.
    const needed = installedVersion === driver ? null
      : installed ? `${name} ${installedVersion} does not match driver ${driver}: Fabric Manager must be exactly the driver's version`
        : `${name} is not installed: on an NVSwitch system CUDA cannot initialise without Fabric Manager of the driver's version (${driver})`;
    const install = aptInstallCmd([`${name}=${driver}-*`]);
    const argv = [...install.argv];
    argv.splice(argv.indexOf('--'), 0, '--allow-change-held-packages');
    resources.push(command(`install-${name}`, needed, { argv: argv as [string, ...string[]] }, { describe: `${name} ${driver} installed`, checkpoint: true }));
  }
  resources.push(packages([name], { state: 'held', why: `${name} not installed (its version follows the driver installed before it)` }));
  // Without NVSwitches (force) the daemon has no fabric to manage and exits: enabled for the baseboard, not started.
  resources.push(service(fabricManagerUnit, { enabled: true, running: pci.nvswitches.length > 0 }));
  const summary = `${name}${driver ? ` ${driver} (the driver's version)` : ''} installed, held and enabled${pci.nvswitches.length ? ` for ${pci.nvswitches.length} NVSwitches` : ' (no NVSwitch on the bus: forced, not started)'}`;
  return { resources, summary };
}

/**
 * NVIDIA Fabric Manager on NVSwitch systems (HGX/DGX: NVIDIA bridges on the bus), of exactly the
 * driver's version and held with it; without it CUDA cannot initialise on those machines.
 */
export const fabricManager = defineStep({
  id: 'fabric-manager',
  title: 'NVIDIA Fabric Manager (NVSwitch systems)',
  after: ['nvidia-driver'],
  params: params({
    branch: Type.Integer({ minimum: 390, maximum: 999, default: 535, description: 'The branch planned for when no driver is installed yet (nvidia-driver.branch); once a driver is there, its own version decides.' }),
    force: Type.Boolean({ default: false, description: 'Install even with no NVSwitch on the bus (an image prepared before the baseboard); the daemon is enabled, not started.' }),
    ...repositoryParams,
  }),

  check: (p) => checkRepository(p, 'fabric-manager'),

  facts: () => [osReleaseFact(), pciFact(), nvidiaStateFact(), cudaSourcesFact()],

  ...fromGpuPlan<Params>(plan),

  /** The installed Fabric Manager must be the loaded (or installed) driver's version; with NVSwitches it must run. */
  async verify(ctx) {
    const query = await ctx.run({ argv: ['sh', '-c', nvidiaStateFact().script] });
    const state = nvidiaStateFact().parse(query.stdout);
    const fm = state.installed.find((i) => i.name.startsWith('nvidia-fabricmanager-'));
    const version = fm ? driverVersionOf(fm.version) : null;
    if (!version || version !== state.driverVersion) throw new ConfigError(`fabric-manager: ${fm?.name ?? 'nvidia-fabricmanager'} ${version ?? 'missing'} does not match driver ${state.driverVersion ?? 'none'}`);
    const pci = nvidiaPci((await ctx.run({ argv: ['sh', '-c', pciFact().script] })).stdout);
    if (!pci.nvswitches.length) return;
    const active = await ctx.run({ argv: ['systemctl', 'is-active', fabricManagerUnit] });
    if (!active.ok) throw new CommandError(active, `${fabricManagerUnit} is not running`);
  },
});
