import { CommandError, ConfigError } from '../core/errors.js';
import { pendingUpdatesFact, type PendingUpdates } from '../facts/audit.js';
import { familyOf, osReleaseFact } from '../facts/state.js';
import { aptUpdateCmd } from '../resources/apt.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import type { Resource } from '../resources/types.js';
import { service } from '../resources/service.js';
import { params, Type } from './schema.js';
import { defineStep } from './types.js';

export const periodicPath = '/etc/apt/apt.conf.d/20auto-upgrades';
/** Sorts after the package's 50unattended-upgrades, so its #clear and list entries apply on top of it. */
export const zanuriPath = '/etc/apt/apt.conf.d/51zanuri-unattended-upgrades';

/** A driver or CUDA upgrade needs a matching kernel module and a reboot: only on the operator's word. */
export const defaultHoldPatterns = [
  'nvidia-*', 'libnvidia-*', 'cuda-*', 'libcuda*', 'libcudnn*', 'libnccl*', 'xserver-xorg-video-nvidia*',
  // Ubuntu's prebuilt, signed modules: upgraded alone they leave "Driver/library version mismatch" until a reboot.
  'linux-modules-nvidia-*', 'linux-objects-nvidia-*', 'linux-signatures-nvidia-*',
];

/**
 * Package-Blacklist entries are Python regular expressions matched at the start of the name: a glob
 * becomes one without backslashes (apt.conf strings stay plain), `*` -> `.*`, `.` and `+` literal,
 * anchored at the end unless it ends in `*`.
 */
export function globToRegex(glob: string): string {
  const body = glob.replace(/[.+*]/g, (c) => (c === '*' ? '.*' : `[${c}]`));
  return glob.endsWith('*') ? body : `${body}$`;
}

/** Reads `apt-config shell` output (NAME='value' lines). */
export function parseAptShell(output: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const match of output.matchAll(/^([A-Z_]+)='([^']*)'$/gm)) values[match[1] as string] = match[2] as string;
  return values;
}

/** Package lists older than this are refreshed before judging what is pending. */
export const staleListsSeconds = 24 * 3600;

/** The security updates unattended-upgrade would install now: security origin, not held by a pattern. */
export function installableSecurityUpdates(updates: PendingUpdates, holdPatterns: readonly string[]): string[] {
  const held = holdPatterns.map((glob) => new RegExp(`^${globToRegex(glob)}`));
  return updates.security.filter((name) => !held.some((r) => r.test(name)));
}

/**
 * upgradeNow: refresh stale lists, then one unattended-upgrade run. What it leaves pending (a
 * conffile it will not overwrite, a package kept back) shows as the step not converging, with the names.
 */
function upgradeNow(updates: PendingUpdates, holdPatterns: readonly string[], now = Date.now() / 1000): Resource[] {
  const pending = installableSecurityUpdates(updates, holdPatterns);
  const stale = updates.listsTime === null || now - updates.listsTime > staleListsSeconds;
  const names = `${pending.slice(0, 12).join(' ')}${pending.length > 12 ? ` and ${pending.length - 12} more` : ''}`;
  const needed = pending.length
    ? `${pending.length} security update(s) pending: ${names}`
    : stale ? `the package lists are ${updates.listsTime === null ? 'missing' : 'more than a day old'}: pending security updates are unknown` : null;
  return [
    command('apt-lists-refresh', needed, aptUpdateCmd, { describe: 'the package lists are fresh', display: 'apt-get update' }),
    command('security-upgrades-now', needed, { argv: ['unattended-upgrade'] }, { describe: 'no security update is pending', display: 'unattended-upgrade (security updates now)' }),
  ];
}

/** apt's own parser checks both files: on the staged copy before the swap, and in place (every file of apt.conf.d) after it. */
const aptChecked = { validate: { argv: ['apt-config', '-c', '{}', 'dump'] }, validateInPlace: { argv: ['apt-config', 'dump'] } } as const;

/** Unattended security upgrades with the NVIDIA driver and CUDA stack held back. */
export const unattendedUpgrades = defineStep({
  id: 'unattended-upgrades',
  title: 'Unattended upgrades',
  params: params({
    securityOnly: Type.Boolean({ default: true, description: 'Only the distribution\'s security archive; false keeps the distribution\'s own default origins.' }),
    holdPatterns: Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9+.*-]{0,99}$', what: 'a package name glob like nvidia-*' }), {
      default: defaultHoldPatterns, description: 'Package name globs unattended-upgrades must never touch (at least 3 characters before a *).',
    }),
    automaticReboot: Type.Boolean({ default: false, description: 'Reboot by itself when an upgrade needs it (/var/run/reboot-required): kernel, glibc and OpenSSL fixes take effect only after a reboot. Off: zanuri check reports the pending reboot and the packages that want it.' }),
    rebootTime: Type.String({ pattern: '^(?:[01][0-9]|2[0-3]):[0-5][0-9]$', what: 'a time of day HH:MM', default: '03:30', description: 'Automatic-Reboot-Time: when an automatic reboot happens (host\'s local time), inside the maintenance window.' }),
    rebootWithUsers: Type.Boolean({ default: false, description: 'Automatic-Reboot-WithUsers: reboot even when someone is logged in.' }),
    upgradeNow: Type.Boolean({ default: false, description: 'Install the pending security updates during this run (unattended-upgrade once, with the settings above and the held packages left alone) instead of within a day by the daily job; the package lists are refreshed first when they are more than a day old or updates are pending.' }),
  }),

  check(p) {
    const i = p.holdPatterns.findIndex((glob) => /^[^*]{0,2}\*/.test(glob));
    if (i >= 0) throw new ConfigError(`unattended-upgrades: holdPatterns[${i}] "${p.holdPatterns[i]}" would hold back too much: write at least 3 characters before *`);
    return p;
  },

  packages: () => ['unattended-upgrades'],

  facts: (p) => [osReleaseFact(), ...(p.upgradeNow ? [pendingUpdatesFact()] : [])],

  resources(facts, p, { templates }) {
    // A host of neither family gets the origins of both (a pattern of the other family matches nothing).
    const family = familyOf(facts.get(osReleaseFact()));
    return [
      file(periodicPath, templates.render('apt/20auto-upgrades', {}), {
        ...aptChecked,
        whyMissing: 'apt does not refresh its lists and run unattended-upgrade daily',
        whyDiffers: `${periodicPath} differs from the wanted settings`,
      }),
      file(zanuriPath, templates.render('apt/51zanuri-unattended-upgrades', {
        securityOnly: p.securityOnly, debian: family !== 'ubuntu', ubuntu: family !== 'debian',
        held: p.holdPatterns.join(' '), blacklist: p.holdPatterns.map(globToRegex),
        automaticReboot: p.automaticReboot, rebootTime: p.rebootTime, rebootWithUsers: p.rebootWithUsers,
      }), {
        ...aptChecked,
        whyMissing: p.securityOnly ? 'unattended-upgrade is not limited to security updates with the NVIDIA/CUDA packages held' : 'the NVIDIA/CUDA packages are not held back from unattended-upgrade',
        whyDiffers: `${zanuriPath} differs from the wanted settings`,
      }),
      service('apt-daily.timer'),
      service('apt-daily-upgrade.timer'),
      ...(p.upgradeNow ? upgradeNow(facts.get(pendingUpdatesFact()), p.holdPatterns) : []),
    ];
  },

  converged: (p) => `unattended-upgrade runs daily (${p.securityOnly ? 'security updates only' : 'distribution default origins'}), holding ${p.holdPatterns.join(' ') || 'nothing'}; ${p.automaticReboot ? `reboots by itself at ${p.rebootTime} when an upgrade needs it` : 'never reboots by itself (zanuri check reports a pending reboot)'}${p.upgradeNow ? '; no security update is pending' : ''}`,

  /** apt itself must read the settings as written: no later file overrides them. */
  async verify(ctx, p) {
    const result = await ctx.run({ argv: ['apt-config', 'shell', 'LISTS', 'APT::Periodic::Update-Package-Lists', 'UU', 'APT::Periodic::Unattended-Upgrade'] });
    if (!result.ok) throw new CommandError(result, 'apt-config shell');
    const values = parseAptShell(result.stdout);
    if (values['LISTS'] !== '1' || values['UU'] !== '1') {
      throw new ConfigError(`unattended-upgrades: apt reads Update-Package-Lists=${values['LISTS'] ?? 'unset'} Unattended-Upgrade=${values['UU'] ?? 'unset'}, not 1: a later file in /etc/apt/apt.conf.d overrides ${periodicPath}`);
    }
    if (!p.holdPatterns.length) return;
    const dump = await ctx.run({ argv: ['apt-config', 'dump', 'Unattended-Upgrade::Package-Blacklist'] });
    if (!dump.ok) throw new CommandError(dump, 'apt-config dump');
    const missing = p.holdPatterns.map(globToRegex).filter((r) => !dump.stdout.includes(`"${r}"`));
    if (missing.length) throw new ConfigError(`unattended-upgrades: apt does not list ${missing.join(' ')} in Unattended-Upgrade::Package-Blacklist`);
  },
});
