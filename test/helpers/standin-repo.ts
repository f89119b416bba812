/**
 * A stand-in for a vendor's apt repository that cannot be reached from here (NVIDIA's): a flat,
 * signed repository built by the test with dpkg-deb, dpkg-scanpackages and gpg, served over HTTP
 * on the test bridge (10.213.0.1) by this process. The packages carry the vendor's names and say in
 * their description that they are stand-ins; their files are small shell scripts.
 *
 *   const repo = await startStandinRepo('stable/deb/amd64', [{ name: 'nvidia-container-toolkit', version: '1.17.0-1', files: {...} }]);
 *   repo.url        http://10.213.0.1:PORT/stable/deb   (the architecture directory below it)
 *   repo.keyArmored the signing key, ASCII-armored
 *   await repo.close()
 *
 * Packages whose files name the repository itself (cuda-keyring's apt source) are given as a function
 * of the repository's URL and its key: cudaKeyringStandin() builds the one NVIDIA's CUDA repository has.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { BRIDGE_IP } from './network.js';
import { runOk } from './proc.js';

export interface StandinPackage {
  name: string;
  version: string;
  /** Absolute path in the package -> [content, mode]. */
  files: Record<string, [string | Buffer, number]>;
  /** Debian control fields beyond the name and version, e.g. { Depends: 'nvidia-open (>= 580)' }. */
  control?: Record<string, string>;
}

/** What a package list built after the server is up gets: the flat directory's URL and the signing key. */
export interface StandinRepoInfo { flatUrl: string; keyArmored: string; keyBinary: Buffer }

/**
 * A stand-in for NVIDIA's cuda-keyring package with the real one's three files: the repository's key
 * as a binary keyring in /usr/share/keyrings/cuda-archive-keyring.gpg, an apt source naming the
 * repository signed by that keyring (/etc/apt/sources.list.d/cuda-<distro>-<arch>.list), and the
 * repository's pin (/etc/apt/preferences.d/cuda-repository-pin-600).
 */
export function cudaKeyringStandin(info: StandinRepoInfo, distroArch = 'debian12-x86_64', version = '1.1-1'): StandinPackage {
  return {
    name: 'cuda-keyring', version,
    files: {
      '/usr/share/keyrings/cuda-archive-keyring.gpg': [info.keyBinary, 0o644],
      [`/etc/apt/sources.list.d/cuda-${distroArch}.list`]: [`deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] ${info.flatUrl} /\n`, 0o644],
      '/etc/apt/preferences.d/cuda-repository-pin-600': ['Package: *\nPin: release l=NVIDIA CUDA\nPin-Priority: 600\n', 0o644],
    },
  };
}

export interface StandinRepo { url: string; keyArmored: string; requests: string[]; close(): Promise<void> }

export async function startStandinRepo(flatDir: string, packageList: StandinPackage[] | ((info: StandinRepoInfo) => StandinPackage[])): Promise<StandinRepo> {
  const root = mkdtempSync(join(tmpdir(), 'zanuri-standin-'));
  const gnupg = join(root, 'gnupg');
  mkdirSync(gnupg, { mode: 0o700 });
  const env = { GNUPGHOME: gnupg };
  const www = join(root, 'www');
  const repoDir = join(www, flatDir);
  mkdirSync(repoDir, { recursive: true });

  await runOk(['gpg', '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'zanuri stand-in repository <standin@invalid>', 'ed25519', 'sign', '1d'], { env });
  const keyArmored = (await runOk(['gpg', '--batch', '--armor', '--export'], { env })).stdout;
  await runOk(['sh', '-c', 'gpg --batch --export > "$1"', 'sh', join(root, 'key.gpg')], { env });
  const keyBinary = readFileSync(join(root, 'key.gpg'));

  const { server, port, requests } = await serveDirectory(www);
  const packages = typeof packageList === 'function' ? packageList({ flatUrl: `http://${BRIDGE_IP}:${port}/${flatDir}/`, keyArmored, keyBinary }) : packageList;
  for (const pkg of packages) {
    const tree = join(root, 'build', pkg.name);
    mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
    writeFileSync(join(tree, 'DEBIAN/control'), [
      `Package: ${pkg.name}`, `Version: ${pkg.version}`, 'Architecture: amd64', 'Maintainer: zanuri tests <tests@invalid>',
      ...Object.entries(pkg.control ?? {}).map(([k, v]) => `${k}: ${v}`),
      `Description: stand-in for ${pkg.name} (zanuri test)`, ' A test package with the vendor package\'s name; not the real software.', '',
    ].join('\n'));
    for (const [path, [content, mode]] of Object.entries(pkg.files)) {
      const dest = join(tree, path);
      mkdirSync(dirname(dest), { recursive: true });
      writeFileSync(dest, content);
      chmodSync(dest, mode);
    }
    await runOk(['dpkg-deb', '--root-owner-group', '-Zgzip', '--build', tree, join(repoDir, `${pkg.name}_${pkg.version}_amd64.deb`)]);
  }
  const scanned = await runOk(['sh', '-c', 'cd "$1" && dpkg-scanpackages --multiversion .', 'sh', repoDir]);
  writeFileSync(join(repoDir, 'Packages'), scanned.stdout);
  const bytes = readFileSync(join(repoDir, 'Packages'));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(repoDir, 'Release'), [
    'Origin: zanuri-standin', 'Label: zanuri stand-in', `Date: ${new Date().toUTCString()}`,
    'SHA256:', ` ${sha256} ${bytes.length} Packages`, '',
  ].join('\n'));

  await runOk(['gpg', '--batch', '--yes', '--clearsign', '--output', join(repoDir, 'InRelease'), join(repoDir, 'Release')], { env });
  return {
    url: `http://${BRIDGE_IP}:${port}/${dirname(flatDir)}`,
    keyArmored,
    requests,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A plain HTTP server for a directory on the test bridge (GET and HEAD, no `..`), with the paths it was asked for. */
export async function serveDirectory(www: string): Promise<{ server: Server; port: number; requests: string[] }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/'));
    requests.push(path);
    try {
      if (path.includes('..')) throw new Error('no');
      const body = readFileSync(join(www, path));
      res.writeHead(200, { 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, BRIDGE_IP, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { server, port, requests };
}
