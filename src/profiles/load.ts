import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { readBundle } from './bundle.js';
import { builtinProfilesDir, shownName } from './location.js';
import type { Profile, Requirement } from './types.js';

export { builtinProfilesDir } from './location.js';

/** Parses and validates one profile file (YAML and the schema validator load on first use). */
export async function loadProfileFile(file: string): Promise<Profile> {
  const { loadProfileFile: parse } = await import('./parse.js');
  return parse(file);
}

/** Applies `extends`: the parent's requirements, with a child's requirement of the same id replacing it. */
function resolveExtends(profile: Profile, byId: ReadonlyMap<string, Profile>, chain: string[] = []): Profile {
  if (!profile.extends) return profile;
  if (chain.includes(profile.id)) {
    throw new ConfigError(`profiles extend each other in a cycle: ${[...chain, profile.id].join(' -> ')}`, { location: profile.file });
  }
  const parentRaw = byId.get(profile.extends);
  if (!parentRaw) {
    throw new ConfigError(`profile "${profile.id}" extends "${profile.extends}", which does not exist`, {
      location: profile.file, hint: `known profiles: ${[...byId.keys()].sort().join(', ')}`,
    });
  }
  const parent = resolveExtends(parentRaw, byId, [...chain, profile.id]);
  const own = new Map(profile.requirements.map((r) => [r.id, r]));
  const requirements: Requirement[] = [
    ...parent.requirements.map((r) => own.get(r.id) ?? r),
    ...profile.requirements.filter((r) => !parent.requirements.some((p) => p.id === r.id)),
  ];
  return {
    ...profile,
    requirements,
    ports: profile.ports ?? parent.ports,
    postgresql: profile.postgresql ?? parent.postgresql,
    benchmarks: profile.benchmarks ?? parent.benchmarks,
    playbook: profile.playbook ?? parent.playbook,
  } as Profile;
}

async function loadDir(dir: string): Promise<Map<string, Profile>> {
  // The shipped profiles were validated at build time; use that unless a file changed since.
  const bundled = dir === builtinProfilesDir ? await readBundle() : null;
  if (bundled) return new Map(bundled.map((p) => [p.id, p]));
  return loadDirFromFiles(dir);
}

/** Every profile file of a directory, parsed and validated. */
export async function loadDirFromFiles(dir: string): Promise<Map<string, Profile>> {
  const names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  const profiles = await Promise.all(names.map((n) => loadProfileFile(join(dir, n))));
  return new Map(profiles.map((p) => [p.id, p]));
}

export interface ProfileSelection {
  /** Profile ids, or paths to profile files (anything containing "/" or ending in .yaml). */
  names?: readonly string[];
  dir?: string;
}

const isPath = (name: string): boolean => name.includes('/') || /\.ya?ml$/.test(name);

/** Loads the selected profiles (all built-in ones when none is named), with `extends` resolved. */
export async function loadProfiles(selection: ProfileSelection = {}): Promise<Profile[]> {
  const byId = await loadDir(selection.dir ?? builtinProfilesDir);
  const names = selection.names ?? [];
  if (!names.length) return [...byId.values()].map((p) => resolveExtends(p, byId));
  const chosen: Profile[] = [];
  for (const name of names) {
    if (isPath(name)) {
      const profile = await loadProfileFile(resolve(name));
      chosen.push(resolveExtends(profile, new Map([...byId, [profile.id, profile]])));
      continue;
    }
    const profile = byId.get(name);
    if (!profile) {
      throw new ConfigError(`unknown profile "${shownName(name)}"`, { hint: `known profiles: ${[...byId.keys()].sort().join(', ')}` });
    }
    chosen.push(resolveExtends(profile, byId));
  }
  return chosen;
}
