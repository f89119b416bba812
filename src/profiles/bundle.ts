import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { builtinProfilesDir, bundlePath } from './location.js';
import type { Profile } from './types.js';

/**
 * Parsing YAML and compiling the schema cost more than the whole hardware probe, so the build
 * writes the validated shipped profiles to one JSON file. It is used only while every profile file
 * and the schema still have the size and mtime they had at build time; any edit falls back to
 * parsing the files, with the same validation and file:line:col errors.
 */
interface Bundle {
  fingerprint: string;
  profiles: Profile[];
}

async function fingerprint(): Promise<string> {
  const names = (await readdir(builtinProfilesDir)).filter((n) => /\.ya?ml$|^schema\.json$/.test(n)).sort();
  const stats = await Promise.all(names.map(async (n) => {
    const s = await stat(join(builtinProfilesDir, n));
    return `${n}:${s.size}:${Math.trunc(s.mtimeMs)}`;
  }));
  return stats.join('|');
}

export async function readBundle(): Promise<Profile[] | null> {
  try {
    const bundle = JSON.parse(await readFile(bundlePath, 'utf8')) as Bundle;
    return bundle.fingerprint === (await fingerprint()) ? bundle.profiles : null;
  } catch {
    return null;
  }
}

export async function writeBundle(profiles: readonly Profile[]): Promise<void> {
  const bundle: Bundle = { fingerprint: await fingerprint(), profiles: [...profiles] };
  await writeFile(bundlePath, JSON.stringify(bundle));
}
