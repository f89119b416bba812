import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, ExitCode, UsageError } from '../core/errors.js';
import type { ArchiveFile } from '../engine/first-boot.js';

export interface CloudInitFlags {
  profile?: string;
  set?: string[];
  only?: string[];
  skip?: string[];
  sshKey?: string;
  nodeUrl?: string;
  nodeSha256?: string;
  zanuriUrl?: string;
  archive?: string;
}

/** The package root, from dist/cli/, src/cli/ and dist/bundle/ alike. */
const packageRoot = fileURLToPath(new URL('../../', import.meta.url));
export const bundleFile = join(packageRoot, 'dist', 'bundle', 'zanuri.mjs');

function filesUnder(dir: string, as: string): ArchiveFile[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort()
    .filter((name) => statSync(join(dir, name)).isFile())
    .map((name) => ({ path: `${as}/${name.split('\\').join('/')}`, data: readFileSync(join(dir, name)) }));
}

/** Public keys only: a private key in user-data would be readable by every process that can reach the metadata service. */
export function readPublicKeys(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`--ssh-key: cannot read ${file}`);
  }
  if (/PRIVATE KEY/.test(text)) throw new UsageError(`--ssh-key ${file} is a private key`, { hint: 'give the public key (the .pub file): user-data is readable by the machine\'s metadata service' });
  const keys = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const bad = keys.find((k) => !/^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/.test(k));
  if (!keys.length || bad !== undefined) throw new UsageError(`--ssh-key ${file}: not an OpenSSH public key${bad ? `: ${JSON.stringify(bad.slice(0, 40))}` : ''}`);
  return keys;
}

/** Parameter names that would hold a secret (no step takes one today: passwords are generated on the host). */
const secretLike = /password$|secret|token|privateKey/i;

/**
 * Everything is read and validated before anything is written: a broken profile, a bad --set, a
 * missing bundle or a bad URL stops here with nothing on stdout and no archive file.
 */
export async function cloudInit(flags: CloudInitFlags, warn: (line: string) => void): Promise<number> {
  const [{ selectSteps, parseSet }, { buildArchive, firstBootUserData, checkUrl, checkSha256, siteTemplatesDir }] = await Promise.all([import('./provision.js'), import('../engine/first-boot.js')]);
  if (!flags.profile) throw new UsageError('name the profile the machine converges to with --profile');
  if (!flags.nodeUrl || !flags.nodeSha256) {
    throw new UsageError('the machine needs a Node runtime that zanuri runs on: name it with --node-url and --node-sha256', {
      hint: 'e.g. --node-url https://nodejs.org/dist/v20.19.5/node-v20.19.5-linux-x64.tar.xz --node-sha256 <its line in SHASUMS256.txt> (or a mirror you control)',
    });
  }
  checkUrl('--node-url', flags.nodeUrl);
  const nodeSha256 = checkSha256('--node-sha256', flags.nodeSha256);
  if (flags.zanuriUrl) checkUrl('--zanuri-url', flags.zanuriUrl);
  if (flags.zanuriUrl && !flags.archive) throw new UsageError('--zanuri-url needs --archive FILE: the archive to upload to that URL (its sha256 is pinned in the user-data)');

  const sets = (flags.set ?? []).map(parseSet);
  if (flags.sshKey) sets.push({ step: 'deploy-user', key: 'authorizedKeys', value: readPublicKeys(flags.sshKey) });
  // A profile file travels in the archive; a shipped profile is there already.
  const profileFile = existsSync(flags.profile) && statSync(flags.profile).isFile() ? flags.profile : null;
  const assignments = sets.map((s) => `${s.step}.${s.key}=${JSON.stringify(s.value)}`);
  const selection = await selectSteps({ profile: flags.profile, set: assignments, ...(flags.only ? { only: flags.only } : {}), ...(flags.skip ? { skip: flags.skip } : {}) });
  if (flags.sshKey && !selection.selected.some((s) => s.step.id === 'deploy-user')) {
    throw new UsageError(`--ssh-key: profile ${flags.profile} has no deploy-user step to give the key to`);
  }
  // The site profile's overriding templates travel in the user-data itself (write_files), not in the
  // archive: the archive stays the same for every site (one upload serves all with --zanuri-url).
  const overrides = selection.templates as { overrideDirectory?: string | null; overridden?: string[] };
  const siteTemplates = overrides.overrideDirectory
    ? (overrides.overridden ?? []).sort().map((name) => ({ name: name.split('\\').join('/'), data: readFileSync(join(overrides.overrideDirectory as string, name)) }))
    : [];
  if (!existsSync(bundleFile)) throw new ConfigError(`${bundleFile} is missing: the first boot ships the bundled CLI`, { hint: 'run npm run build' });

  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { name: string; version: string };
  const files: ArchiveFile[] = [
    { path: 'package.json', data: Buffer.from(`${JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', private: true })}\n`) },
    { path: 'dist/bundle/zanuri.mjs', data: readFileSync(bundleFile) },
    ...['profiles', 'playbooks', 'templates'].flatMap((dir) => filesUnder(join(packageRoot, dir), dir)),
  ];
  const profileArg = profileFile ? `/opt/zanuri/app/site/${basename(profileFile)}` : flags.profile;
  if (profileFile) files.push({ path: `site/${basename(profileFile)}`, data: readFileSync(profileFile) });
  const archive = buildArchive(files);
  const carries = [
    ...sets.map((s) => `--set ${s.step}.${s.key}${secretLike.test(s.key) ? ' (A SECRET: move it off user-data)' : ''}`),
    ...(profileFile ? [`the profile file ${relative(process.cwd(), profileFile) || profileFile}`] : []),
    ...(siteTemplates.length ? [`its overriding templates (${siteTemplates.map((t) => t.name).join(', ')})`] : []),
  ];
  const userData = firstBootUserData({
    version: pkg.version,
    what: `profile ${profileFile ? basename(profileFile) : flags.profile}`,
    provisionArgs: ['--profile', profileArg, ...(overrides.overrideDirectory ? ['--templates', siteTemplatesDir] : []), ...(flags.only ?? []).flatMap((id) => ['--only', id]), ...(flags.skip ?? []).flatMap((id) => ['--skip', id]), ...assignments.flatMap((a) => ['--set', a])],
    node: { url: flags.nodeUrl, sha256: nodeSha256 },
    archive: { data: archive, url: flags.zanuriUrl ?? null },
    carries,
    siteTemplates,
  }, selection.templates);

  // Written last, once everything above has succeeded.
  if (flags.archive) {
    try {
      writeFileSync(flags.archive, archive);
    } catch (error) {
      throw new UsageError(`--archive: cannot write ${JSON.stringify(flags.archive.replace(/[^\x20-\x7e]/g, '?').slice(0, 200))} (${(error as NodeJS.ErrnoException).code ?? 'error'}); no user-data was written`);
    }
  }
  process.stdout.write(userData);
  const kib = (n: number): string => `${(n / 1024).toFixed(0)} KiB`;
  warn(`user-data is ${kib(Buffer.byteLength(userData))} (zanuri archive ${kib(archive.length)} ${flags.zanuriUrl ? `fetched from ${flags.zanuriUrl}` : 'inside it'}); ` +
    `many clouds cap user-data (EC2 16 KiB, Azure and OpenStack 64 KiB, GCE 256 KiB)${flags.zanuriUrl ? '' : ': use --zanuri-url with --archive where it does not fit'}`);
  if (sets.length || siteTemplates.length) warn(`user-data is readable through the machine's metadata service and kept in /var/lib/cloud; it carries ${carries.join(', ')}`);
  const flagged = sets.filter((s) => secretLike.test(s.key));
  if (flagged.length) warn(`${flagged.map((s) => `${s.step}.${s.key}`).join(', ')} look like secrets: pass them some other way (steps that need passwords generate them on the host)`);
  return ExitCode.ok;
}
