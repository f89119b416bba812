/**
 * Debian 12 root filesystem for test targets, built once with mmdebstrap and cached.
 *
 *   /var/cache/zanuri-test/rootfs-<hash>.tar   the mmdebstrap output (about 230 MB, ~20-40 s to build)
 *   /var/cache/zanuri-test/base-<hash>/        unpacked once; read-only lower layer of every target's overlay
 *   /var/cache/zanuri-test/base-<hash>.complete  stamp written after a complete unpack
 *
 * <hash> is a sha256 of RECIPE, so changing a package or a hook makes a new cache entry.
 * A flock(1) lock stops parallel vitest workers from building twice.
 * Set ZANURI_TEST_CACHE to move the cache (default /var/cache/zanuri-test).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withLock } from './lock.js';
import { runOk } from './proc.js';

export const CACHE_DIR = process.env.ZANURI_TEST_CACHE ?? '/var/cache/zanuri-test';

const SOURCES = [
  'deb http://deb.debian.org/debian bookworm main',
  'deb http://deb.debian.org/debian bookworm-updates main',
  'deb http://deb.debian.org/debian-security bookworm-security main',
  '',
].join('\n');

/** Everything that determines the rootfs contents. Hooks are fixed shell text; "$1" is the rootfs. */
export const RECIPE = {
  suite: 'bookworm',
  mirror: 'http://deb.debian.org/debian',
  variant: 'minbase',
  packages: [
    'systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'sudo', 'iproute2', 'util-linux',
    'pciutils', 'procps', 'ca-certificates', 'iputils-ping', 'dmidecode', 'kmod', 'less',
  ],
  customizeHooks: [
    // every target gets its own host keys (targets.ts); none may be shared through the lower layer
    'rm -f "$1"/etc/ssh/ssh_host_*',
    `printf '%s' '${SOURCES}' > "$1"/etc/apt/sources.list`,
    'echo localhost > "$1"/etc/hostname',
    ': > "$1"/etc/machine-id',
    'mkdir -p "$1"/root/.ssh && chmod 700 "$1"/root/.ssh',
  ],
  version: 1,
} as const;

export function recipeHash(): string {
  return createHash('sha256').update(JSON.stringify(RECIPE)).digest('hex').slice(0, 16);
}

export interface RootfsInfo { tarball: string; baseDir: string; built: boolean; unpacked: boolean }

/** Returns the unpacked base dir, building/unpacking it first when needed. Idempotent; safe across processes. */
export async function ensureRootfs(log: (msg: string) => void = () => undefined): Promise<RootfsInfo> {
  const hash = recipeHash();
  const tarball = join(CACHE_DIR, `rootfs-${hash}.tar`);
  const baseDir = join(CACHE_DIR, `base-${hash}`);
  const stamp = `${baseDir}.complete`; // outside the dir, so targets do not see it
  if (existsSync(stamp)) return { tarball, baseDir, built: false, unpacked: false };
  mkdirSync(CACHE_DIR, { recursive: true });
  return withLock(join(CACHE_DIR, `rootfs-${hash}.lock`), async () => {
    let built = false;
    let unpacked = false;
    if (!existsSync(tarball)) {
      const tmp = `${tarball}.tmp`;
      rmSync(tmp, { force: true });
      const t0 = Date.now();
      log(`building rootfs ${tarball} with mmdebstrap`);
      await runOk(
        [
          'mmdebstrap', '--mode=root', '--format=tar', `--variant=${RECIPE.variant}`, '--quiet',
          `--include=${RECIPE.packages.join(',')}`,
          ...RECIPE.customizeHooks.map((h) => `--customize-hook=${h}`),
          RECIPE.suite, tmp, RECIPE.mirror,
        ],
        { timeoutMs: 15 * 60_000, env: { DEBIAN_FRONTEND: 'noninteractive' } },
      );
      renameSync(tmp, tarball);
      built = true;
      log(`rootfs built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    if (!existsSync(stamp)) {
      const tmpDir = `${baseDir}.tmp`;
      rmSync(tmpDir, { recursive: true, force: true });
      mkdirSync(tmpDir, { recursive: true });
      await runOk(['tar', '-C', tmpDir, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarball], {
        timeoutMs: 10 * 60_000,
      });
      rmSync(baseDir, { recursive: true, force: true });
      renameSync(tmpDir, baseDir);
      writeFileSync(stamp, `${hash}\n`);
      unpacked = true;
    }
    return { tarball, baseDir, built, unpacked };
  });
}
