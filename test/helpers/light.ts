/**
 * Light target: no systemd, just `sshd -D -e` chrooted into the slot's overlay, inside the
 * slot's network namespace (`ip netns exec`, which also gives it a private mount namespace,
 * so the proc/dev/sys/run mounts below vanish with the last process) and its own UTS namespace.
 * The spawned pid is sshd itself (every wrapper execs), so SIGHUP to it reloads host keys.
 */
import { inCgroup } from './cgroup.js';
import type { Slot } from './network.js';
import { spawnDetached } from './proc.js';

// fixed script; $1 = root dir, $2 = hostname
const LIGHT_INIT = [
  'set -e',
  'root=$1',
  'hostname "$2"',
  'mount -t proc proc "$root/proc"',
  'mount --rbind /dev "$root/dev"',
  'mount -t sysfs sysfs "$root/sys"',
  'mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"',
  'mkdir -p "$root/run/sshd"',
  'exec chroot "$root" /usr/sbin/sshd -D -e',
].join('\n');

export function startLight(slot: Slot, rootDir: string, logPath: string): number {
  const argv = ['ip', 'netns', 'exec', slot.netns, 'unshare', '--uts', 'sh', '-c', LIGHT_INIT, 'sh', rootDir, slot.name];
  return spawnDetached(inCgroup(slot.name, argv), logPath);
}
