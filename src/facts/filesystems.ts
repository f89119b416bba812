import type { FilesystemFact } from './types.js';
import type { ProbeSection } from './probe.js';

export const filesystemsProbe: ProbeSection[] = [{ name: 'df', script: 'df -P -T -B1' }];

const pseudo = new Set([
  'tmpfs', 'devtmpfs', 'proc', 'sysfs', 'cgroup', 'cgroup2', 'squashfs', 'efivarfs',
  'devpts', 'mqueue', 'debugfs', 'tracefs', 'securityfs', 'pstore', 'bpf', 'autofs', 'ramfs', 'nsfs', 'fuse.lxcfs',
]);

/** `df -P -T -B1`: POSIX format keeps each filesystem on one line; mount points may contain spaces. */
export function parseDf(text: string): FilesystemFact[] {
  const filesystems: FilesystemFact[] = [];
  for (const line of text.split('\n').slice(1)) {
    const match = /^(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+%\s+(.+)$/.exec(line);
    if (!match) continue;
    const [, source = '', fstype = '', size = '0', , available = '0', mountpoint = ''] = match;
    if (pseudo.has(fstype)) continue;
    filesystems.push({ source, fstype, sizeBytes: Number(size), availableBytes: Number(available), mountpoint });
  }
  return filesystems;
}

/** The filesystem that holds `path`: the longest mount point that is a prefix of it. */
export function filesystemFor(filesystems: readonly FilesystemFact[], path: string): FilesystemFact | null {
  let best: FilesystemFact | null = null;
  for (const fs of filesystems) {
    const prefix = fs.mountpoint === '/' ? '/' : `${fs.mountpoint}/`;
    if ((path === fs.mountpoint || path.startsWith(prefix)) && (!best || fs.mountpoint.length > best.mountpoint.length)) best = fs;
  }
  return best;
}
