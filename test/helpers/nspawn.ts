/**
 * Full target: `systemd-nspawn -b` boots the slot's overlay with systemd as PID 1 inside the
 * slot's network namespace. Flags that matter on a host without systemd as PID 1 / without a bus:
 *   --register=no --keep-unit   no machined / system bus needed; nspawn stays in our cgroup
 *   --private-network + --network-namespace-path   without --private-network the container
 *                                lacks CAP_NET_ADMIN (ufw, docker fail later)
 * nspawn is spawned detached, inside the target's own cgroup; its console goes to console.log.
 */
import { readFileSync } from 'node:fs';
import { cgroupPids, inCgroup } from './cgroup.js';
import type { Slot } from './network.js';
import { spawnDetached } from './proc.js';

/** nspawn flags a target running Docker needs: dockerd and runc create session keyrings (keyctl). */
export const DOCKER_NSPAWN_FLAGS = ['--system-call-filter=@keyring'];

/**
 * `systemctl reboot` inside a container makes systemd-nspawn exit with 133 (what systemd-nspawn@.service
 * restarts on): this loop boots the same root again, as a machine's firmware would. TERM reaches nspawn.
 */
const REBOOT_LOOP = [
  'trap \'kill -TERM "$child" 2>/dev/null\' TERM INT',
  'while :; do',
  '  "$@" & child=$!',
  '  wait "$child"; rc=$?',
  '  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done',
  '  [ "$rc" -eq 133 ] || exit "$rc"',
  '  echo "zanuri test: the target rebooted; booting it again"',
  'done',
].join('\n');

export function startContainer(slot: Slot, rootDir: string, consoleLog: string, extraFlags: readonly string[] = [], options: { rebootable?: boolean } = {}): number {
  const argv = [
    'systemd-nspawn', '--quiet', '--boot',
    '--directory', rootDir,
    '--machine', slot.name,
    '--register=no', '--keep-unit',
    '--private-network', `--network-namespace-path=/run/netns/${slot.netns}`,
    '--console=read-only', '--link-journal=no', '--resolv-conf=off', '--timezone=off', '--settings=no',
    ...extraFlags,
    '--', 'systemd.log_color=0', // arguments for the container's systemd
  ];
  const command = options.rebootable ? ['sh', '-c', REBOOT_LOOP, 'zanuri-reboot-loop', ...argv] : argv;
  return spawnDetached(inCgroup(slot.name, command), consoleLog, {
    ...(process.env as Record<string, string>),
    SYSTEMD_LOG_COLOR: '0',
  });
}

/**
 * Host pid of the container's PID 1 (the process in the target's cgroup whose innermost pid is 1,
 * in the shallowest pid namespace: a Docker container inside the target has a PID 1 of its own, one
 * namespace deeper), or null.
 */
export function containerLeader(slot: Slot): number | null {
  let leader: { pid: number; depth: number } | null = null;
  for (const pid of cgroupPids(slot.name)) {
    try {
      const m = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      const ids = m?.[1]?.trim().split(/\s+/) ?? [];
      if (ids.length >= 2 && ids[ids.length - 1] === '1' && (leader === null || ids.length < leader.depth)) leader = { pid, depth: ids.length };
    } catch { /* exited */ }
  }
  return leader?.pid ?? null;
}
