import { CommandError, ConfigError } from '../core/errors.js';
import { plan, type Action } from '../core/plan.js';
import { fileFact, serviceFact } from '../facts/state.js';
import { boolean, list, object } from './params.js';
import type { Step } from './types.js';

export interface UnattendedUpgradesParams {
  /** Only the distribution's security archive; false keeps the distribution's own default origins. */
  securityOnly: boolean;
  /** Package name globs (`nvidia-*`) unattended-upgrades must never touch. */
  holdPatterns: string[];
}

const id = 'unattended-upgrades';
export const periodicPath = '/etc/apt/apt.conf.d/20auto-upgrades';
/** Sorts after the package's 50unattended-upgrades, so its #clear and list entries apply on top of it. */
export const zanuriPath = '/etc/apt/apt.conf.d/51zanuri-unattended-upgrades';
export const timers = ['apt-daily.timer', 'apt-daily-upgrade.timer'] as const;

/** A driver or CUDA upgrade needs a matching kernel module and a reboot: only on the operator's word. */
export const defaultHoldPatterns = ['nvidia-*', 'libnvidia-*', 'cuda-*', 'libcuda*', 'libcudnn*', 'libnccl*', 'xserver-xorg-video-nvidia*'];
/** A Debian package name glob: name characters and `*`, starting with a letter or digit. */
const holdPattern = /^[a-z0-9][a-z0-9+.*-]{0,99}$/;

/**
 * Package-Blacklist entries are Python regular expressions matched at the start of the name: a glob
 * becomes one without backslashes (apt.conf strings stay plain), `*` -> `.*`, `.` and `+` literal,
 * anchored at the end unless it ends in `*`.
 */
export function globToRegex(glob: string): string {
  const body = glob.replace(/[.+*]/g, (c) => (c === '*' ? '.*' : `[${c}]`));
  return glob.endsWith('*') ? body : `${body}$`;
}

/** Exactly what Debian's unattended-upgrades writes when asked to enable itself: a host it set up is left alone. */
export const periodicContent = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n';

/** Security origins per distribution family; a host of neither gets both (a pattern of the other family matches nothing). */
export const securityOrigins = {
  debian: ['origin=Debian,codename=${distro_codename}-security,label=Debian-Security'],
  ubuntu: [
    'origin=Ubuntu,archive=${distro_codename}-security,label=Ubuntu',
    'origin=UbuntuESMApps,archive=${distro_codename}-apps-security',
    'origin=UbuntuESM,archive=${distro_codename}-infra-security',
  ],
} as const;
export type Family = keyof typeof securityOrigins | 'unknown';

const osRelease = '/etc/os-release';

/** ubuntu for Ubuntu and its derivatives (ID_LIKE), debian for Debian, else unknown. */
export function familyOf(osReleaseText: string | null): Family {
  const field = (name: string): string[] => (new RegExp(`^${name}="?([^"\\n]*)"?$`, 'm').exec(osReleaseText ?? '')?.[1] ?? '').split(/\s+/);
  const ids = [...field('ID'), ...field('ID_LIKE')];
  return ids.includes('ubuntu') ? 'ubuntu' : ids.includes('debian') ? 'debian' : 'unknown';
}

export function renderConf(p: UnattendedUpgradesParams, family: Family): string {
  const block = (name: string, items: string[]): string[] => [`${name} {`, ...items.map((i) => `        "${i}";`), '};'];
  return [
    '// Managed by zanuri (unattended-upgrades); edits here are overwritten.',
    ...(p.securityOnly
      ? [
        '// Security updates only: the origins of 50unattended-upgrades are cleared first.',
        '#clear Unattended-Upgrade::Allowed-Origins;',
        '#clear Unattended-Upgrade::Origins-Pattern;',
        ...block('Unattended-Upgrade::Origins-Pattern', family === 'unknown' ? [...securityOrigins.debian, ...securityOrigins.ubuntu] : [...securityOrigins[family]]),
      ]
      : ['// Origins: the distribution defaults of 50unattended-upgrades.']),
    ...(p.holdPatterns.length
      ? [
        `// Held back from automatic upgrades (${p.holdPatterns.join(' ')}): a driver or CUDA upgrade needs a matching kernel module and a reboot.`,
        ...block('Unattended-Upgrade::Package-Blacklist', p.holdPatterns.map(globToRegex)),
      ]
      : []),
    '',
  ].join('\n');
}

/** Reads `apt-config shell` output (NAME='value' lines). */
export function parseAptShell(output: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const match of output.matchAll(/^([A-Z_]+)='([^']*)'$/gm)) values[match[1] as string] = match[2] as string;
  return values;
}

/**
 * Unattended security upgrades with the NVIDIA driver and CUDA stack held back. Both files are
 * checked by apt's own parser: on the staged copy (apt-config -c) before the swap, and in place
 * (apt-config dump reads every file of apt.conf.d) before anything else runs apt.
 */
export const unattendedUpgrades: Step<UnattendedUpgradesParams> = {
  id,
  title: 'Unattended upgrades',

  parseParams(raw) {
    const p = object(raw, id, ['securityOnly', 'holdPatterns']);
    const holdPatterns = list(p, id, 'holdPatterns', (value, i) => {
      if (typeof value !== 'string' || !holdPattern.test(value)) {
        throw new ConfigError(`${id}: holdPatterns[${i}] must be a package name glob like nvidia-*, got ${JSON.stringify(value)?.slice(0, 80)}`);
      }
      if (/^[^*]{0,2}\*/.test(value)) throw new ConfigError(`${id}: holdPatterns[${i}] "${value}" would hold back too much: write at least 3 characters before *`);
      return value;
    }, defaultHoldPatterns);
    return { securityOnly: boolean(p, id, 'securityOnly', true), holdPatterns };
  },

  packages: () => ['unattended-upgrades'],

  facts: () => [fileFact(osRelease), fileFact(periodicPath), fileFact(zanuriPath), ...timers.map((t) => serviceFact(t))],

  plan(facts, p) {
    const actions: Action[] = [];
    const family = familyOf(facts.get(fileFact(osRelease)).content);
    const files: Array<[string, string, string]> = [
      [periodicPath, periodicContent, 'apt does not refresh its lists and run unattended-upgrade daily'],
      [zanuriPath, renderConf(p, family), p.securityOnly ? 'unattended-upgrade is not limited to security updates with the NVIDIA/CUDA packages held' : 'the NVIDIA/CUDA packages are not held back from unattended-upgrade'],
    ];
    for (const [path, content, why] of files) {
      const current = facts.get(fileFact(path));
      if (current.content === content && current.mode === '644' && current.owner === 'root') continue;
      actions.push({
        kind: 'put', path, content, mode: 0o644, owner: 'root', group: 'root', before: current.content,
        validate: { argv: ['apt-config', '-c', '{}', 'dump'] },
        validateInPlace: { argv: ['apt-config', 'dump'] },
        why: current.exists ? (current.content === content ? `${path} is not 0644 root` : `${path} differs from the wanted settings`) : why,
      });
    }
    for (const timer of timers) {
      const state = facts.get(serviceFact(timer));
      if (state.enabled === 'enabled' && state.active === 'active') continue;
      actions.push({ kind: 'service', unit: timer, op: 'enable-now', why: `${timer} is ${state.enabled} and ${state.active}: the daily apt runs would not happen` });
    }
    return plan(actions, `unattended-upgrade runs daily (${p.securityOnly ? 'security updates only' : 'distribution default origins'}), holding ${p.holdPatterns.length ? p.holdPatterns.join(' ') : 'nothing'}`);
  },

  /** apt itself must read the settings as written: no later file overrides them. */
  async verify(ctx, p) {
    const result = await ctx.run({ argv: ['apt-config', 'shell', 'LISTS', 'APT::Periodic::Update-Package-Lists', 'UU', 'APT::Periodic::Unattended-Upgrade'] });
    if (!result.ok) throw new CommandError(result, 'apt-config shell');
    const values = parseAptShell(result.stdout);
    if (values['LISTS'] !== '1' || values['UU'] !== '1') {
      throw new ConfigError(`${id}: apt reads Update-Package-Lists=${values['LISTS'] ?? 'unset'} Unattended-Upgrade=${values['UU'] ?? 'unset'}, not 1: a later file in /etc/apt/apt.conf.d overrides ${periodicPath}`);
    }
    if (!p.holdPatterns.length) return;
    const dump = await ctx.run({ argv: ['apt-config', 'dump', 'Unattended-Upgrade::Package-Blacklist'] });
    if (!dump.ok) throw new CommandError(dump, 'apt-config dump');
    const missing = p.holdPatterns.map(globToRegex).filter((r) => !dump.stdout.includes(`"${r}"`));
    if (missing.length) throw new ConfigError(`${id}: apt does not list ${missing.join(' ')} in Unattended-Upgrade::Package-Blacklist`);
  },
};
