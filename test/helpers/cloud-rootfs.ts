/**
 * A second Debian 12 root filesystem with cloud-init baked in, for first-boot tests: a target booted
 * from it with a NoCloud seed in /var/lib/cloud/seed/nocloud/ runs a real cloud-init first boot.
 * Built once with mmdebstrap and cached beside the base rootfs (rootfs.ts), keyed by its own recipe.
 *
 * The image config (/etc/cloud/cloud.cfg.d/, what a cloud image's vendor ships, not user-data):
 *   - NoCloud only, so ds-identify does not probe clouds;
 *   - the harness's host key is kept (ssh_deletekeys: false; its one type, already there): the test knows it
 *     before boot, as it knows every target's;
 *   - no network config (nspawn's netns already has the address);
 *   - locale C.UTF-8 (Debian's locale module fails on en_US.UTF-8 where locales are not generated).
 * libstdc++6 is there because a Node runtime needs it (every cloud image has it).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withLock } from './lock.js';
import { runOk } from './proc.js';
import { CACHE_DIR, RECIPE } from './rootfs.js';

const CLOUD_CFG = [
  '# zanuri test image: what a cloud image vendor ships',
  'datasource_list: [ NoCloud, None ]',
  'ssh_deletekeys: false',
  'ssh_genkeytypes: [ed25519]', // the harness wrote that key: nothing is generated
  'network: {config: disabled}',
  'locale: C.UTF-8',
  '',
].join('\n');

export const CLOUD_RECIPE = {
  base: RECIPE,
  packages: ['cloud-init', 'libstdc++6', 'python3', 'curl'],
  customizeHooks: [
    // cloud-init's install generates host keys again: none may be shared through the lower layer
    'rm -f "$1"/etc/ssh/ssh_host_*',
    `printf '%s' '${CLOUD_CFG}' > "$1"/etc/cloud/cloud.cfg.d/90-zanuri-test.cfg`,
    'rm -rf "$1"/var/lib/cloud/instances "$1"/var/lib/cloud/instance "$1"/run/cloud-init',
  ],
  version: 1,
} as const;

export function cloudRecipeHash(): string {
  return createHash('sha256').update(JSON.stringify(CLOUD_RECIPE)).digest('hex').slice(0, 16);
}

/** The unpacked cloud-init root (a lower layer for targets), built and unpacked once; safe across processes. */
export async function ensureCloudRootfs(log: (msg: string) => void = () => undefined): Promise<string> {
  const hash = cloudRecipeHash();
  const tarball = join(CACHE_DIR, `cloud-rootfs-${hash}.tar`);
  const baseDir = join(CACHE_DIR, `cloud-base-${hash}`);
  const stamp = `${baseDir}.complete`;
  if (existsSync(stamp)) return baseDir;
  mkdirSync(CACHE_DIR, { recursive: true });
  return withLock(join(CACHE_DIR, `cloud-rootfs-${hash}.lock`), async () => {
    if (!existsSync(tarball)) {
      const tmp = `${tarball}.tmp`;
      rmSync(tmp, { force: true });
      const t0 = Date.now();
      log(`building cloud-init rootfs ${tarball} with mmdebstrap`);
      await runOk(
        [
          'mmdebstrap', '--mode=root', '--format=tar', `--variant=${RECIPE.variant}`, '--quiet',
          `--include=${[...RECIPE.packages, ...CLOUD_RECIPE.packages].join(',')}`,
          ...[...RECIPE.customizeHooks, ...CLOUD_RECIPE.customizeHooks].map((h) => `--customize-hook=${h}`),
          RECIPE.suite, tmp, RECIPE.mirror,
        ],
        { timeoutMs: 20 * 60_000, env: { DEBIAN_FRONTEND: 'noninteractive' } },
      );
      renameSync(tmp, tarball);
      log(`cloud-init rootfs built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    if (!existsSync(stamp)) {
      const tmpDir = `${baseDir}.tmp`;
      rmSync(tmpDir, { recursive: true, force: true });
      mkdirSync(tmpDir, { recursive: true });
      await runOk(['tar', '-C', tmpDir, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarball], { timeoutMs: 10 * 60_000 });
      rmSync(baseDir, { recursive: true, force: true });
      renameSync(tmpDir, baseDir);
      writeFileSync(stamp, `${hash}\n`);
    }
    return baseDir;
  });
}
