import { CommandError } from '../core/errors.js';
import { gpuGeneration, nvidiaPci, type GpuGeneration } from '../facts/gpu.js';
import { commandFact, fileFact, heldPackagesFact, osReleaseFact, type FactValues } from '../facts/state.js';
import { aptInstallCmd, aptUpdateCmd } from '../resources/apt.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import { reboot } from '../resources/reboot.js';
import { service } from '../resources/service.js';
import type { Resource } from '../resources/types.js';
import {
  RefusedError, checkRepository, cudaRepository, cudaSourcesFact, distroOf, gpuPresence, installedBranch, nvidiaStateFact, pciFact, repositoryParams, secureBootFact,
  type NvidiaState, fromGpuPlan, type GpuPlan } from './nvidia-shared.js';
import { params, Type, url } from './schema.js';
import { defineStep, type PlanContext } from './types.js';

export type Route = 'ubuntu-signed' | 'debian' | 'cuda-repo';
type Modules = 'open' | 'proprietary';

export const blacklistPath = '/etc/modprobe.d/zanuri-blacklist-nouveau.conf';
export const nonFreePath = '/etc/apt/sources.list.d/zanuri-debian-non-free.sources';
/** The DKMS signing certificate Debian's and Ubuntu's dkms create on their first build. */
export const dkmsMokPath = '/var/lib/dkms/mok.pub';

const mokTestFact = () => commandFact(['mokutil', '--test-key', dkmsMokPath]);
const initramfsFact = () => commandFact(['sh', '-c', 'command -v update-initramfs']);
const machineFact = () => commandFact(['uname', '-m']);

/** Debian 12 ships branch 535 only (non-free nvidia-driver); a newer branch comes from NVIDIA's CUDA repository. */
export const debianBranch = 535;

interface Params {
  branch: number;
  route: 'auto' | Route;
  modules: 'auto' | Modules;
  secureBoot: 'refuse' | 'mok-enrolled';
  force: boolean;
  debianMirror: string;
  repository: string | null;
  repositoryKey: string[] | null;
}

export function routeFor(family: string, p: Pick<Params, 'route' | 'branch'>): Route | null {
  if (p.route !== 'auto') return p.route;
  if (family === 'ubuntu') return 'ubuntu-signed';
  if (family === 'debian') return p.branch <= debianBranch ? 'debian' : 'cuda-repo';
  return null;
}

/**
 * NVIDIA's guidance: the open kernel modules are required from Grace Hopper and Blackwell on, recommended for
 * Hopper, and the default for Turing and later from branch 560; GPUs before Turing work only with the proprietary ones.
 */
export function modulesFor(generations: readonly GpuGeneration[], branch: number, wanted: Params['modules']): { modules: Modules; why: string } {
  const old = generations.includes('pre-turing');
  const needsOpen = generations.some((g) => g === 'blackwell' || g === 'hopper');
  if (wanted === 'open' && old) throw new RefusedError('nvidia-driver: modules "open" was asked for, but a GPU older than Turing is on the bus and the open modules do not support it; nothing was changed', { hint: 'set nvidia-driver.modules to auto or proprietary' });
  if (wanted === 'proprietary' && generations.includes('blackwell')) throw new RefusedError('nvidia-driver: modules "proprietary" was asked for, but a Blackwell GPU is on the bus and needs the open modules; nothing was changed', { hint: 'set nvidia-driver.modules to auto or open' });
  if (wanted !== 'auto') return { modules: wanted, why: `${wanted} kernel modules, as asked` };
  if (old) return { modules: 'proprietary', why: 'proprietary kernel modules: a GPU older than Turing cannot use the open ones' };
  if (needsOpen) return { modules: 'open', why: 'open kernel modules: NVIDIA requires them from Blackwell and Grace Hopper on and recommends them for Hopper' };
  if (generations.length && branch >= 560) return { modules: 'open', why: 'open kernel modules: NVIDIA\'s default for Turing and later from branch 560' };
  return { modules: 'proprietary', why: generations.length ? `proprietary kernel modules: NVIDIA's default for this GPU on branch ${branch}` : 'proprietary kernel modules (no GPU on the bus to choose by)' };
}

const debArch = (machine: string): string => (machine === 'aarch64' ? 'arm64' : 'amd64');

/** The packages of a route: what is installed and held, and the kernel headers DKMS builds against (not held: they follow the kernel). */
export function routePackages(route: Route, branch: number, modules: Modules, state: NvidiaState, machine: string, family: string): { driver: string[]; headers: string[]; pin?: string } {
  const open = modules === 'open';
  switch (route) {
    case 'ubuntu-signed': {
      // Canonical builds and signs the modules for each kernel flavour ("5.15.0-91-generic" -> generic): no DKMS, no MOK.
      const flavour = /^\d+\.\d+\.\d+-\d+-(.+)$/.exec(state.kernel ?? '')?.[1] ?? 'generic';
      const server = `${branch}-server${open ? '-open' : ''}`;
      return { driver: [`linux-modules-nvidia-${server}-${flavour}`, `nvidia-headless-no-dkms-${server}`, `nvidia-utils-${branch}-server`, `nvidia-compute-utils-${branch}-server`], headers: [] };
    }
    case 'debian':
      return { driver: [open ? 'nvidia-open-kernel-dkms' : 'nvidia-kernel-dkms', 'nvidia-driver', 'nvidia-smi', 'nvidia-persistenced'], headers: [`linux-headers-${debArch(machine)}`] };
    case 'cuda-repo': {
      // NVIDIA's guide: the running kernel's headers on Ubuntu; on Debian the kernel's metapackage, which DKMS builds for.
      const headers = family === 'ubuntu' && state.kernel ? [`linux-headers-${state.kernel}`] : [`linux-headers-${debArch(machine)}`];
      // From 575 a pinning package locks apt onto the branch (installed before the driver); before, branch-named metapackages did.
      if (branch >= pinningFrom) return { driver: [open ? 'nvidia-open' : 'cuda-drivers'], headers, pin: `nvidia-driver-pinning-${branch}` };
      return { driver: [open ? `nvidia-open-${branch}` : `cuda-drivers-${branch}`], headers };
    }
  }
}

/**
 * NVIDIA's driver installation guide ("Version locking", APT): from branch 575 the CUDA repository's
 * driver packages are locked onto a branch by `nvidia-driver-pinning-<branch>`, installed before the
 * driver; older branches are chosen by the branch-named `nvidia-open-<branch>` / `cuda-drivers-<branch>`.
 */
export const pinningFrom = 575;

const buildsDkms = (route: Route): boolean => route !== 'ubuntu-signed';

function secureBootRefusal(route: Route, family: string): RefusedError {
  return new RefusedError(
    `nvidia-driver: Secure Boot is on and the ${route} route builds its kernel modules with DKMS on this host, unsigned by any key the firmware trusts: the kernel would refuse to load them. Nothing was changed.`,
    {
      hint: [
        family === 'ubuntu'
          ? 'Either (1) use Canonical\'s signed prebuilt modules, which need no key: --set nvidia-driver.route=ubuntu-signed;'
          : 'Either (1) use signed prebuilt modules (Ubuntu\'s linux-modules-nvidia-*-server packages; Debian has none) or turn Secure Boot off in the firmware;',
        `or (2) enrol DKMS's signing key as a Machine Owner Key: on the host, \`apt-get install dkms mokutil\`, \`dkms generate_mok\` (creates ${dkmsMokPath} if missing),`,
        `\`mokutil --import ${dkmsMokPath}\` (it asks for a one-time password), reboot, and at the blue MokManager screen on the console (a person or the BMC's remote console)`,
        'choose Enroll MOK, Continue, Yes, type that password, Reboot; then run again with --set nvidia-driver.secureBoot=mok-enrolled.',
      ].join(' '),
    },
  );
}

/** Why the host must boot again before the driver works, or null. */
export function rebootReason(state: NvidiaState, gpus: number, willInstall: string[]): string | null {
  if (willInstall.length) return `the new driver (${willInstall.join(', ')}) loads at the next boot`;
  if (gpus && state.nouveauLoaded) return 'nouveau is loaded: the NVIDIA driver cannot take the GPU until a boot without it';
  const packaged = state.installed.find((p) => /^(nvidia-kernel-(open-)?dkms|nvidia-open-kernel-dkms|libnvidia-compute-\d+|libcuda1)$/.test(p.name));
  const installedVersion = packaged ? /^(?:\d+:)?(\d{3,}\.\d+(?:\.\d+)?)/.exec(packaged.version)?.[1] : undefined;
  if (state.loaded && installedVersion && state.loaded !== installedVersion) {
    return `driver ${state.loaded} is loaded but ${installedVersion} is installed: CUDA fails with "Driver/library version mismatch" until a reboot`;
  }
  if (!state.loaded && state.modulesChanged && state.bootEpoch !== null && state.modulesChanged.at > state.bootEpoch) {
    return `${state.modulesChanged.pkg} was installed after this boot: its module loads at the next boot`;
  }
  return null;
}

function nonFreeSources(ctx: PlanContext, mirror: string, codename: string): Resource {
  const sources = file(nonFreePath, ctx.templates.render('nvidia/debian-non-free.sources', { mirror, codename }), { whyMissing: 'Debian\'s non-free components (the NVIDIA driver) are not in apt\'s sources' });
  return {
    id: 'apt-sources:debian-non-free',
    describe: 'apt reads Debian\'s contrib, non-free and non-free-firmware components',
    checkpoint: true,
    facts: () => sources.facts(),
    plan(facts) {
      const actions = sources.plan(facts);
      return actions.length ? [...actions, { kind: 'run', cmd: aptUpdateCmd, why: 'apt reads the non-free package lists' }] : [];
    },
  };
}

function plan(facts: FactValues, p: Params, ctx: PlanContext): GpuPlan {
  const presence = gpuPresence(facts, p.force);
  if (presence.skip) return { skip: presence.skip };
  const release = facts.get(osReleaseFact());
  const distro = distroOf(release);
  const route = routeFor(distro.family, p);
  if (!route) throw new RefusedError(`nvidia-driver: no driver route for ${release['PRETTY_NAME'] ?? 'this OS'} (Ubuntu and Debian 12 are supported); nothing was changed`);
  if (route === 'debian' && p.branch > debianBranch) throw new RefusedError(`nvidia-driver: Debian's own packages carry branch ${debianBranch}, not ${p.branch}; nothing was changed`, { hint: 'set nvidia-driver.route to cuda-repo (or auto)' });
  const state = facts.get(nvidiaStateFact());
  const gpus = facts.get(pciFact()).gpus;
  const { modules, why: modulesWhy } = modulesFor(gpus.map(gpuGeneration), p.branch, p.modules);
  const machine = facts.get(machineFact()).stdout.trim() || 'x86_64';
  const { driver, headers, pin } = routePackages(route, p.branch, modules, state, machine, distro.family);

  if (buildsDkms(route) && facts.get(secureBootFact()) === 'enabled') {
    if (p.secureBoot === 'refuse') throw secureBootRefusal(route, distro.family);
    if (!/is already enrolled/.test(facts.get(mokTestFact()).stdout)) {
      throw new RefusedError(`nvidia-driver: secureBoot is mok-enrolled, but ${dkmsMokPath} is not an enrolled Machine Owner Key (mokutil --test-key); nothing was changed`, { hint: secureBootRefusal(route, distro.family).hint ?? '' });
    }
  }

  const have = installedBranch(state);
  const installedNames = new Set(state.installed.map((i) => i.name));
  const satisfied = have !== null && have >= p.branch && !driver.every((d) => installedNames.has(d));
  const upgrade = have !== null && have < p.branch ? driver.filter((d) => installedNames.has(d)) : [];
  const resources: Resource[] = [];
  if (satisfied) {
    // A driver of this branch or newer is already there (maybe from another route): keep it, hold what it is.
    const held = state.installed.filter((i) => /^(nvidia-|libnvidia-|linux-modules-nvidia-|libcuda1$)/.test(i.name) && !/^nvidia-(fabricmanager|container)/.test(i.name)).map((i) => i.name);
    if (held.length) resources.push(packages(held, { state: 'held', why: `driver ${state.driverVersion} (branch ${have} >= ${p.branch}) is installed` }));
  } else {
    if (have !== null && have < p.branch) {
      // apt refuses to replace held packages: the old branch is released first, on purpose and visibly.
      const oldHeld = facts.get(heldPackagesFact()).filter((n) => /nvidia|cuda/.test(n) && !driver.includes(n));
      resources.push(command('unhold-old-driver', oldHeld.length ? `driver ${state.driverVersion} (branch ${have}) is older than branch ${p.branch}: its held packages are released for the upgrade` : null,
        { argv: ['apt-mark', 'unhold', '--', ...oldHeld] }, { describe: 'no older NVIDIA driver is held', undo: { argv: ['apt-mark', 'hold', '--', ...oldHeld] } }));
    }
    if (route === 'debian') resources.push(nonFreeSources(ctx, p.debianMirror, distro.codename));
    if (route === 'cuda-repo') resources.push(...cudaRepository(p, distro.name, facts, ctx, 'nvidia-driver'));
    if (headers.length) resources.push(packages(headers, { why: `${headers.join(', ')} not installed: DKMS builds the module against them` }));
    if (have !== null && have < p.branch && upgrade.length) {
      // The same package names at an older branch: installing them again upgrades them (held ones too, on purpose).
      const install = aptInstallCmd(upgrade);
      const argv = [...install.argv];
      argv.splice(argv.indexOf('--'), 0, '--allow-change-held-packages');
      resources.push(command('upgrade-driver', `driver ${state.driverVersion} (branch ${have}) is older than branch ${p.branch}: ${upgrade.join(', ')} upgraded`,
        { argv: argv as [string, ...string[]] }, { describe: `the driver is branch ${p.branch} or newer`, checkpoint: true }));
    }
    if (pin) resources.push(packages([pin], { why: `${pin} is not installed: it locks apt onto branch ${p.branch} (NVIDIA's version locking), before the driver is installed` }));
    resources.push(packages(driver, { state: 'held', why: `${driver.filter((d) => !installedNames.has(d)).join(', ') || driver.join(', ')}: branch ${p.branch} by the ${route} route, ${modulesWhy}` }));
  }

  const blacklist = ctx.templates.render('nvidia/blacklist-nouveau.conf', {});
  const current = facts.get(fileFact(blacklistPath));
  resources.push(file(blacklistPath, blacklist, { whyMissing: 'nouveau is not blacklisted: it would claim the GPU at boot' }));
  const hasInitramfs = facts.get(initramfsFact()).exitCode === 0;
  resources.push(command('update-initramfs', hasInitramfs && current.content !== blacklist.text ? 'the initramfs must not load nouveau either' : null,
    { argv: ['update-initramfs', '-u'] }, { describe: 'the initramfs knows the nouveau blacklist' }));

  const willInstall = satisfied ? [] : [...driver.filter((d) => !installedNames.has(d)), ...upgrade];
  resources.push(reboot('nvidia-driver', rebootReason(state, presence.gpus, willInstall)));
  // Without a GPU (force) the persistence daemon has nothing to keep: enabled for the card to come, not started.
  resources.push(service('nvidia-persistenced.service', { enabled: true, running: presence.gpus > 0 }));

  const summary = satisfied
    ? `driver ${state.driverVersion} (branch ${have} >= ${p.branch}) installed and held`
    : `branch ${p.branch} by the ${route} route (${driver.join(', ')}), ${modulesWhy}, held`;
  return { resources, summary: `${summary}; nouveau blacklisted; nvidia-persistenced enabled${presence.gpus ? ' and running' : ' (no GPU on the bus: forced, not started)'}` };
}

/**
 * The NVIDIA driver, where an NVIDIA GPU is on the bus: Canonical's signed prebuilt modules on Ubuntu,
 * Debian's non-free DKMS packages (branch 535) or NVIDIA's CUDA repository on Debian 12; open or
 * proprietary kernel modules by GPU generation; nouveau blacklisted; packages held; a reboot when the
 * new module can only load at boot. Secure Boot with DKMS-built modules stops before any change.
 */
export const nvidiaDriver = defineStep({
  id: 'nvidia-driver',
  title: 'NVIDIA driver',
  params: params({
    branch: Type.Integer({ minimum: 390, maximum: 999, default: debianBranch, description: 'The driver branch to install when the host has none this new (the profiles\' minimum: 535); an installed newer branch is kept.' }),
    route: Type.Union([Type.Literal('auto'), Type.Literal('ubuntu-signed'), Type.Literal('debian'), Type.Literal('cuda-repo')], {
      default: 'auto', description: 'auto: Canonical\'s signed prebuilt modules on Ubuntu; Debian\'s non-free packages on Debian 12 for branch 535, NVIDIA\'s CUDA repository for a newer branch.',
    }),
    modules: Type.Union([Type.Literal('auto'), Type.Literal('open'), Type.Literal('proprietary')], { default: 'auto', description: 'Kernel modules: auto picks open from Hopper on (and Turing+ from branch 560), proprietary before Turing.' }),
    secureBoot: Type.Union([Type.Literal('refuse'), Type.Literal('mok-enrolled')], { default: 'refuse', description: 'With Secure Boot on and a DKMS route: refuse (explain and stop), or mok-enrolled once DKMS\'s key is an enrolled Machine Owner Key.' }),
    force: Type.Boolean({ default: false, description: 'Install even with no NVIDIA GPU on the bus (an image prepared before the card is fitted); nothing is checked against a GPU.' }),
    debianMirror: url({ default: 'http://deb.debian.org/debian', description: 'The Debian mirror for the non-free components (Debian route).' }),
    ...repositoryParams,
  }),

  check: (p) => checkRepository(p, 'nvidia-driver'),

  facts: () => [osReleaseFact(), pciFact(), nvidiaStateFact(), cudaSourcesFact(), secureBootFact(), mokTestFact(), initramfsFact(), machineFact(), heldPackagesFact(), fileFact(blacklistPath)],

  ...fromGpuPlan<Params>(plan),

  /** With a GPU, nvidia-smi must list it; forced without one, DKMS must have built the module for a kernel. */
  async verify(ctx) {
    const pci = await ctx.run({ argv: ['sh', '-c', pciFact().script] });
    if (nvidiaPci(pci.stdout).gpus.length) {
      const smi = await ctx.run({ argv: ['nvidia-smi', '-L'] });
      if (!smi.ok) throw new CommandError(smi, 'nvidia-smi -L (the driver does not see the GPU)');
      return;
    }
    const dkms = await ctx.run({ argv: ['sh', '-c', 'command -v dkms >/dev/null || exit 0; dkms status | grep -E "^nvidia[^,]*(/|, )[0-9].*: installed" || { dkms status >&2; exit 1; }'] });
    if (!dkms.ok) throw new CommandError(dkms, 'dkms status (the NVIDIA module was not built for any installed kernel)');
  },
});
