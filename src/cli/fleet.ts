/**
 * The hosts of a run from the command line: --host flags, or an Ansible inventory (--inventory)
 * narrowed by --limit. Everything here is checked before any connection.
 */
import { UsageError } from '../core/errors.js';
import type { ConnectOptions } from '../transport/connect.js';
import { checkHostSpecs } from './ssh-options.js';

export interface FleetFlags {
  host?: string[];
  inventory?: string;
  limit?: string;
  listHosts?: boolean;
}

/** One host as the command line or the inventory gives it. */
export interface ResolvedHost {
  name: string;
  spec: string | null;
  connect: ConnectOptions;
  /** From the inventory: zanuri_profile, zanuri_set, and whether sudo is allowed. */
  profile: string | null;
  sets: string[];
  become: boolean;
  loginIsRoot: boolean;
}

/** The selected hosts, or null when neither --host nor --inventory names any (this machine, or an error, is the caller's call). */
export async function resolveHosts(flags: FleetFlags, connect: ConnectOptions, warn: (line: string) => void): Promise<ResolvedHost[] | null> {
  if (flags.inventory && flags.host?.length) throw new UsageError('--host and --inventory exclude each other', { hint: 'put the hosts in the inventory, or narrow it with --limit' });
  if (flags.limit !== undefined && !flags.inventory) throw new UsageError('--limit selects hosts of an inventory: pass --inventory FILE');
  if (!flags.inventory) {
    if (!flags.host?.length) return null;
    checkHostSpecs(flags.host);
    return flags.host.map((h) => ({ name: h, spec: h, connect, profile: null, sets: [], become: true, loginIsRoot: false }));
  }
  const [{ loadInventory }, { selectHosts }, { inventoryConnect, inventoryTarget }, { parseYamlText }] = await Promise.all([
    import('../inventory/load.js'), import('../inventory/pattern.js'), import('../inventory/target.js'), import('../profiles/yaml.js'),
  ]);
  const inventory = await loadInventory(flags.inventory, parseYamlText);
  for (const line of inventory.warnings) warn(line);
  const names = selectHosts(inventory, flags.limit ?? 'all');
  if (!names.length) {
    throw new UsageError(flags.limit === undefined ? `the inventory ${flags.inventory} has no hosts` : `--limit "${flags.limit}" selects no host of ${flags.inventory}`, {
      hint: 'zanuri --list-hosts shows what a pattern selects; patterns: group, host, glob, a:b, a:&b, a:!b',
    });
  }
  return names.map((name) => {
    const t = inventoryTarget(inventory, name);
    const hostConnect = flags.listHosts ? connect : inventoryConnect(connect, t, inventory.file);
    return { name, spec: t.spec, connect: hostConnect, profile: t.profile, sets: t.sets, become: t.become, loginIsRoot: t.loginIsRoot };
  });
}

/** --serial: a whole number or a percentage. */
export function serialValue(value: string): string {
  if (!/^(?:[1-9]\d*|(?:100|[1-9]\d?)(?:\.\d+)?%)$/.test(value.trim())) throw new UsageError(`--serial must be a batch size like 5 or a share like 25%, got ${shown(value)}`);
  return value.trim();
}

/** A flag's bad value as an error shows it: quoted, printable, at most 40 characters. */
export const shown = (value: string): string => JSON.stringify(value.replace(/[^\x20-\x7e]/g, '?').slice(0, 40)) + (value.length > 40 ? '...' : '');

/** A whole number of seconds in a range (--host-timeout, --lock-wait). */
export function secondsValue(flag: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^[0-9]{1,6}$/.test(value.trim()) || n < min || n > max) {
      throw new UsageError(`${flag} must be a whole number of seconds from ${min} to ${max}, got ${shown(value)}`);
    }
    return n;
  };
}

/** --max-fail-percent: 0 to 100. */
export function percentValue(value: string): number {
  const n = Number(value);
  if (!/^\d+(?:\.\d+)?$/.test(value.trim()) || n > 100) throw new UsageError(`--max-fail-percent must be a number from 0 to 100, got ${shown(value)}`);
  return n;
}
