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

export function startContainer(slot: Slot, rootDir: string, consoleLog: string): number {
  const argv = [
    'systemd-nspawn', '--quiet', '--boot',
    '--directory', rootDir,
    '--machine', slot.name,
    '--register=no', '--keep-unit',
    '--private-network', `--network-namespace-path=/run/netns/${slot.netns}`,
    '--console=read-only', '--link-journal=no', '--resolv-conf=off', '--timezone=off', '--settings=no',
    '--', 'systemd.log_color=0', // arguments for the container's systemd
  ];
  return spawnDetached(inCgroup(slot.name, argv), consoleLog, {
    ...(process.env as Record<string, string>),
    SYSTEMD_LOG_COLOR: '0',
  });
}

/** Host pid of the container's PID 1 (the process in the target's cgroup whose innermost pid is 1), or null. */
export function containerLeader(slot: Slot): number | null {
  for (const pid of cgroupPids(slot.name)) {
    try {
      const m = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      const ids = m?.[1]?.trim().split(/\s+/) ?? [];
      if (ids.length >= 2 && ids[ids.length - 1] === '1') return pid;
    } catch { /* exited */ }
  }
  return null;
}
