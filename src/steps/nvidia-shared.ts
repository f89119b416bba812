/**
 * What the GPU steps (nvidia-driver, fabric-manager, cuda-toolkit) share: the facts they read about the
 * NVIDIA stack, NVIDIA's CUDA apt repository, and the refusal that stops a step before it changes anything.
 * Not a step itself (steps never import each other).
 */
import { ConfigError, ExitCode, ZanuriError } from '../core/errors.js';
import {
  branchOf, driverVersionOf, nvidiaPci, parseLoadedNvidiaVersion, parseMokutilSbState, pciListScript, type NvidiaPci, type SecureBootState,
} from '../facts/gpu.js';
import { familyOf, osReleaseFact, type FactRequest, type FactValues } from '../facts/state.js';
import { aptUpdateCmd } from '../resources/apt.js';
import { aptRepository, keyringPath, sourcesPath } from '../resources/apt-repository.js';
import { absent, file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import type { Resource } from '../resources/types.js';
import { Type } from './schema.js';
import type { PlanContext } from './types.js';

/**
 * A step that cannot go on without the operator (Secure Boot with unsigned modules, a CUDA the driver
 * cannot run): planned, nothing changed, the ways forward in the hint. Exit code 6, like a failed step.
 */
export class RefusedError extends ZanuriError {
  readonly code = 'REFUSED';
  readonly exitCode = ExitCode.provisionFailed;
}

/** NVIDIA devices on the bus: lspci -nn -D, or the same shape from sysfs without pciutils (as the hardware probe). */
export function pciFact(): FactRequest<NvidiaPci> {
  return {
    key: 'nvidia-pci',
    script: pciListScript,
    parse: nvidiaPci,
  };
}

/** Secure Boot as mokutil reports it; without mokutil, the EFI variable printed in mokutil's words. */
export function secureBootFact(): FactRequest<SecureBootState> {
  return {
    key: 'secure-boot',
    script: [
      'if command -v mokutil >/dev/null 2>&1; then mokutil --sb-state 2>&1',
      'elif [ ! -d /sys/firmware/efi ]; then echo "EFI variables are not supported on this system"',
      'else',
      '  v=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c',
      '  if [ -r "$v" ]; then b=$(od -An -t u1 -j 4 -N 1 "$v" | tr -d " "); [ "$b" = 1 ] && echo "SecureBoot enabled" || echo "SecureBoot disabled"; fi',
      'fi',
    ].join('\n'),
    parse: parseMokutilSbState,
  };
}

export interface InstalledPackage {
  name: string;
  version: string;
}

/** The NVIDIA stack as the running system has it: what is loaded, what is installed, and when the modules changed. */
export interface NvidiaState {
  /** When this boot began (seconds since the epoch): PID 1's start, which a container's reboot resets too. */
  bootEpoch: number | null;
  kernel: string | null;
  /** The loaded nvidia module's version, null when none is loaded. */
  loaded: string | null;
  nouveauLoaded: boolean;
  /** The newest install or upgrade of a kernel-module package (its dpkg file list's time). */
  modulesChanged: { at: number; pkg: string } | null;
  /** Installed NVIDIA and CUDA packages. */
  installed: InstalledPackage[];
  /** The driver version: the installed kernel-module (or user-space) package's, else the loaded module's. */
  driverVersion: string | null;
}

/** Kernel-module packages of every route: NVIDIA's nvidia-open and nvidia-open-<branch> (installed with its module), Debian DKMS, NVIDIA's DKMS, Ubuntu's prebuilt and DKMS ones. */
export const modulePackageGlobs = ['nvidia-open', 'nvidia-open-[0-9]*', 'nvidia-kernel-dkms', 'nvidia-kernel-open-dkms', 'nvidia-open-kernel-dkms', 'linux-modules-nvidia-*', 'nvidia-dkms-*'];

export function nvidiaStateFact(): FactRequest<NvidiaState> {
  const lists = modulePackageGlobs.map((g) => `/var/lib/dpkg/info/${g}.list /var/lib/dpkg/info/${g}:*.list`).join(' ');
  return {
    key: 'nvidia-state',
    script: [
      'b=$(awk \'/^btime/{print $2}\' /proc/stat 2>/dev/null)',
      's=$(sed \'s/.*) //\' /proc/1/stat 2>/dev/null | awk \'{print $20}\')',
      'hz=$(getconf CLK_TCK 2>/dev/null || echo 100)',
      '[ -n "$b" ] && [ -n "$s" ] && echo "boot $((b + s / hz))"',
      'echo "kernel $(uname -r)"',
      '[ -r /sys/module/nvidia/version ] && echo "loaded $(cat /sys/module/nvidia/version)"',
      '[ -d /sys/module/nouveau ] && echo nouveau',
      `for f in ${lists}; do [ -f "$f" ] && echo "changed $(stat -c %Y "$f") $(basename "$f" .list)"; done`,
      'dpkg-query -W -f=\'pkg\\t${db:Status-Abbrev}\\t${Package}\\t${Version}\\n\' \'nvidia-*\' \'libnvidia-*\' \'linux-modules-nvidia-*\' \'libcuda1\' \'cuda-*\' 2>/dev/null',
      'true',
    ].join('\n'),
    parse: parseNvidiaState,
  };
}

export function parseNvidiaState(output: string): NvidiaState {
  const state: NvidiaState = { bootEpoch: null, kernel: null, loaded: null, nouveauLoaded: false, modulesChanged: null, installed: [], driverVersion: null };
  for (const line of output.split('\n')) {
    const [word, ...rest] = line.split(line.startsWith('pkg\t') ? '\t' : ' ');
    if (word === 'boot' && /^\d+$/.test(rest[0] ?? '')) state.bootEpoch = Number(rest[0]);
    else if (word === 'kernel' && rest[0]) state.kernel = rest[0];
    else if (word === 'loaded') state.loaded = parseLoadedNvidiaVersion(rest.join(' '));
    else if (word === 'nouveau') state.nouveauLoaded = true;
    else if (word === 'changed' && /^\d+$/.test(rest[0] ?? '') && rest[1]) {
      const at = Number(rest[0]);
      if (!state.modulesChanged || at > state.modulesChanged.at) state.modulesChanged = { at, pkg: rest[1].replace(/:.*$/, '') };
    } else if (word === 'pkg' && /^[ih]i/.test(rest[0] ?? '') && rest[1] && rest[2]) state.installed.push({ name: rest[1], version: rest[2] });
  }
  const modulePackage = state.installed.find((p) => modulePackageGlobs.some((g) => new RegExp(`^${g.replace('*', '.*')}$`).test(p.name)) && !p.name.startsWith('linux-modules-'));
  // Ubuntu's prebuilt modules carry the kernel's version; their driver version is the kernel-common package's.
  const userSpace = state.installed.find((p) => /^(libnvidia-compute-\d+|nvidia-kernel-common-\d+|libcuda1|nvidia-utils-\d+)/.test(p.name));
  // The installed packages' version is the one the host runs after its next boot; the loaded module only when no package says.
  state.driverVersion = driverVersionOf((modulePackage ?? userSpace)?.version ?? '') ?? state.loaded;
  return state;
}

/** The installed driver's branch (from the loaded module or the packages), null when none is installed. */
export const installedBranch = (state: NvidiaState): number | null => (state.driverVersion ? branchOf(state.driverVersion) : null);

/** Debian 12 or an Ubuntu LTS: the distribution names NVIDIA's repository paths use (debian12, ubuntu2204). */
export function distroOf(release: Record<string, string>): { family: 'debian' | 'ubuntu' | 'unknown'; name: string; codename: string } {
  const family = familyOf(release);
  const version = (release['VERSION_ID'] ?? '').replace(/"/g, '');
  const id = family === 'ubuntu' ? `ubuntu${version.replace('.', '')}` : family === 'debian' ? `debian${version.split('.')[0]}` : 'unknown';
  return { family, name: id, codename: release['VERSION_CODENAME'] ?? '' };
}

export const osFacts = (): FactRequest<unknown>[] => [osReleaseFact(), pciFact(), nvidiaStateFact()];

/** The GPUs the step may act on, and why it skips otherwise (every GPU step says the same). */
export function gpuPresence(facts: FactValues, force: boolean): { gpus: number; skip: string | null } {
  // Before any fact is read (preflight, discovery) there is nothing to route by: declare nothing yet.
  if (!facts.get(osReleaseFact())['ID']) return { gpus: 0, skip: 'the host\'s OS is not known (no /etc/os-release)' };
  const pci = facts.get(pciFact());
  if (pci.gpus.length) return { gpus: pci.gpus.length, skip: null };
  if (force) return { gpus: 0, skip: null };
  return { gpus: 0, skip: 'no NVIDIA GPU on the PCI bus (vendor 10de, class 03xx): nothing to do (force: true installs anyway)' };
}

// ---------- NVIDIA's CUDA repository ----------

export const nvidiaKeyFingerprint = 'EB693B3035CD5710E231E123A4B469963BF863CC';

/** The repository parameters every step that uses NVIDIA's CUDA repository takes. */
export const repositoryParams = {
  repository: Type.Union([Type.Null(), Type.String({ pattern: '^https?://[A-Za-z0-9.-]+(?::\\d{1,5})?(?:/[A-Za-z0-9._~+,=:@%-]+)*/$', what: 'an http(s) URL ending in /' })], {
    default: null,
    description: 'NVIDIA\'s CUDA apt repository for this OS; null: https://developer.download.nvidia.com/compute/cuda/repos/<debian12|ubuntu2204|ubuntu2404>/<x86_64|sbsa>/ (a mirror must keep NVIDIA\'s signatures).',
  }),
  repositoryKey: Type.Union([Type.Null(), Type.Array(Type.String({ pattern: '^[\\x20-\\x7e]*$', what: 'a line of an ASCII-armored key' }), { minItems: 3 })], {
    default: null,
    description: `The key that bootstraps NVIDIA's CUDA repository until the cuda-keyring package takes over; null: the shipped copy of NVIDIA's 3bf863cc key (templates/nvidia/cuda-archive-key.asc, fingerprint ${nvidiaKeyFingerprint}). E.g. --set STEP.repositoryKey=@3bf863cc.pub.`,
  }),
};
export interface RepositoryParams {
  repository: string | null;
  repositoryKey: string[] | null;
}

/**
 * The key as apt reads it. `--set KEY=@file` hands over the file's non-empty lines, which drops the blank
 * line that ends an armor's headers: it is put back. Anything but one armored public key is refused.
 */
export function armoredKey(lines: readonly string[], step: string): string {
  const body = lines.map((l) => l.trim()).filter(Boolean);
  if (body[0] !== '-----BEGIN PGP PUBLIC KEY BLOCK-----' || body.at(-1) !== '-----END PGP PUBLIC KEY BLOCK-----' || body.filter((l) => l.startsWith('-----')).length !== 2) {
    throw new ConfigError(`${step}: repositoryKey is not one ASCII-armored public key (-----BEGIN PGP PUBLIC KEY BLOCK----- ... -----END PGP PUBLIC KEY BLOCK-----)`);
  }
  let headers = 1;
  while (headers < body.length && /^[A-Za-z-]+: /.test(body[headers] ?? '')) headers += 1;
  return [...body.slice(0, headers), '', ...body.slice(headers)].join('\n');
}

/** Parameter checks every repository-using step runs before any connection. */
export function checkRepository<P extends RepositoryParams>(p: P, step: string): P {
  if (p.repositoryKey) armoredKey(p.repositoryKey, step);
  return p;
}

const archOf = (kernelArch: string | null): string => (kernelArch === 'aarch64' ? 'sbsa' : 'x86_64');

export function repositoryUrl(p: RepositoryParams, distro: string, machine: string | null = null): string {
  return p.repository ?? `https://developer.download.nvidia.com/compute/cuda/repos/${distro}/${archOf(machine)}/`;
}

/** Where NVIDIA's cuda-keyring package puts the repository's key (its own apt source names it as signed-by). */
export const cudaKeyringPath = '/usr/share/keyrings/cuda-archive-keyring.gpg';
export const cudaKeyringPackage = 'cuda-keyring';

export interface AptSourceLine { file: string; url: string; signedBy: string | null }

/**
 * The apt sources other than zanuri's own that trust the cuda-keyring package's keyring: the package's
 * own .list (`deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] URL /`), one-line or deb822.
 */
export function cudaSourcesFact(): FactRequest<AptSourceLine[]> {
  return {
    key: 'cuda-keyring-sources',
    script: [
      'for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do',
      '  case "$f" in */zanuri-*) continue ;; esac',
      '  [ -f "$f" ] && grep -q "cuda-archive-keyring" "$f" && sed "s|^|$f\t|" "$f"',
      'done',
      'true',
    ].join('\n'),
    parse: parseCudaSources,
  };
}

export function parseCudaSources(output: string): AptSourceLine[] {
  const found: AptSourceLine[] = [];
  const deb822 = new Map<string, { url?: string; signedBy?: string }>();
  for (const line of output.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const file = line.slice(0, tab);
    const text = line.slice(tab + 1).trim();
    const one = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)/.exec(text);
    if (one?.[2]) {
      const signedBy = /(?:^|\s)signed-by=(\S+)/.exec(one[1] ?? '')?.[1] ?? null;
      found.push({ file, url: one[2], signedBy });
      continue;
    }
    const field = /^(URIs|Signed-By):\s*(\S+)/i.exec(text);
    if (field?.[1] && field[2]) {
      const entry = deb822.get(file) ?? {};
      if (field[1].toLowerCase() === 'uris') entry.url = field[2]; else entry.signedBy = field[2];
      deb822.set(file, entry);
    }
  }
  for (const [file, entry] of deb822) if (entry.url) found.push({ file, url: entry.url, signedBy: entry.signedBy ?? null });
  return found;
}

const withSlash = (url: string): string => (url.endsWith('/') ? url : `${url}/`);

/** Removes zanuri's bootstrap source and key once cuda-keyring owns the repository (or re-signs zanuri's source by its keyring). */
function handover(name: string, sources: Resource | null, removed: Resource[], why: string): Resource {
  return {
    id: `apt-repository:${name}-handover`,
    describe: why,
    checkpoint: true,
    facts: () => [...(sources?.facts() ?? []), ...removed.flatMap((r) => r.facts())],
    plan(facts) {
      const actions = [...removed.flatMap((r) => r.plan(facts)), ...(sources?.plan(facts) ?? [])];
      if (actions.length) actions.push({ kind: 'run', cmd: aptUpdateCmd, why: `apt reads NVIDIA's CUDA repository through the ${cudaKeyringPackage} package's keyring` });
      return actions;
    },
  };
}

/**
 * NVIDIA's CUDA repository, set up as NVIDIA's guide does it: the cuda-keyring package carries the
 * repository's key (and NVIDIA's future rotations of it) in /usr/share/keyrings/cuda-archive-keyring.gpg, and its own .list names
 * the repository signed by that keyring. zanuri only bootstraps it: its deb822 source, trusted with
 * the shipped (or given) key, lets apt install cuda-keyring; then, so that apt never sees one
 * repository with two Signed-By values (an error), the bootstrap source and key are removed when the
 * package's source names the same repository, or zanuri's source is re-signed by the package's keyring
 * when it does not (a mirror, or a package source the administrator removed).
 */
export function cudaRepository(p: RepositoryParams, distro: string, facts: FactValues, ctx: PlanContext, step: string): Resource[] {
  const name = 'nvidia-cuda';
  const url = repositoryUrl(p, distro);
  const keyringInstalled = facts.get(nvidiaStateFact()).installed.some((i) => i.name === cudaKeyringPackage);
  if (!keyringInstalled) {
    const key = p.repositoryKey ? ctx.templates.render('nvidia/repository-key.asc', { key: armoredKey(p.repositoryKey, step) }) : ctx.templates.render('nvidia/cuda-archive-key.asc', {});
    return [
      aptRepository(name, { sources: ctx.templates.render('nvidia/cuda.sources', { url, keyring: keyringPath(name) }), key }),
      packages([cudaKeyringPackage], { why: `${cudaKeyringPackage} is not installed: NVIDIA's guide installs it first; it carries the repository's key (${cudaKeyringPath}) and its rotations` }),
    ];
  }
  const packageSource = facts.get(cudaSourcesFact()).find((s) => withSlash(s.url) === withSlash(url) && s.signedBy === cudaKeyringPath);
  const bootstrapKey = absent(keyringPath(name), { why: `${cudaKeyringPackage} is installed: the bootstrap key is no longer needed (apt trusts ${cudaKeyringPath})` });
  if (packageSource) {
    const ownSources = absent(sourcesPath(name), { why: `${packageSource.file} (from ${cudaKeyringPackage}) names ${url}: a second source for it would give apt two Signed-By values` });
    return [handover(name, null, [ownSources, bootstrapKey], `${url} comes from ${packageSource.file} (${cudaKeyringPackage}), signed by ${cudaKeyringPath}`)];
  }
  const sources = file(sourcesPath(name), ctx.templates.render('nvidia/cuda.sources', { url, keyring: cudaKeyringPath }), {
    mode: 0o644, whyMissing: `no apt source names ${url} (the ${cudaKeyringPackage} package's names another repository)`,
    whyDiffers: `${sourcesPath(name)} is to trust ${url} through ${cudaKeyringPackage}'s keyring (${cudaKeyringPath})`,
    validate: { argv: ['sh', '-c', 'grep -q "^Signed-By: $2\\$" "$1"', 'zanuri-sources', '{}', cudaKeyringPath] },
  });
  return [handover(name, sources, [bootstrapKey], `${url} from ${sourcesPath(name)}, signed by ${cudaKeyringPath} (${cudaKeyringPackage})`)];
}

/** What a GPU step plans: its resources and the line that says it is converged, or why it does not apply here. */
export type GpuPlan = { resources: Resource[]; summary: string } | { skip: string };

/** The resources() and converged() of a step planned by `plan`: nothing to declare when it is skipped, and the reason. */
export function fromGpuPlan<P>(plan: (facts: FactValues, p: P, ctx: PlanContext) => GpuPlan) {
  return {
    resources(facts: FactValues, p: P, ctx: PlanContext): Resource[] {
      const planned = plan(facts, p, ctx);
      return 'skip' in planned ? [] : planned.resources;
    },
    converged(p: P, facts: FactValues, ctx: PlanContext): string {
      const planned = plan(facts, p, ctx);
      return 'skip' in planned ? `skipped: ${planned.skip}` : planned.summary;
    },
  };
}
