/**
 * One cgroup per target, /zanuri-test/<name>, in every hierarchy systemd cares about:
 * cgroup v2 (/sys/fs/cgroup) or, on hybrid hosts, name=systemd (v1) + unified (v2).
 * The target's first process joins it before exec (JOIN_SCRIPT), so the container/sshd
 * and all descendants stay inside; teardown kills everything in it and removes it depth-first.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './proc.js';

const ROOT = '/sys/fs/cgroup';
const GROUP = 'zanuri-test';

export function hierarchies(): string[] {
  if (existsSync(join(ROOT, 'cgroup.controllers'))) return [ROOT]; // pure v2
  return ['systemd', 'unified'].map((h) => join(ROOT, h)).filter((d) => existsSync(join(d, 'cgroup.procs')));
}

export function cgroupDirs(name: string): string[] {
  return hierarchies().map((h) => join(h, GROUP, name));
}

/** Fixed script: writes its own pid into each cgroup dir given before `--`, then execs the rest. */
export const JOIN_SCRIPT =
  'while [ "$1" != "--" ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"';

/** argv prefix that runs `argv` inside the target's cgroup(s). */
export function inCgroup(name: string, argv: readonly string[]): string[] {
  return ['sh', '-c', JOIN_SCRIPT, 'sh', ...cgroupDirs(name), '--', ...argv];
}

export function createCgroup(name: string): void {
  for (const dir of cgroupDirs(name)) mkdirSync(dir, { recursive: true });
}

function subdirsDepthFirst(dir: string): string[] {
  const out: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return out;
  }
  for (const e of entries) out.push(...subdirsDepthFirst(join(dir, e)));
  out.push(dir);
  return out;
}

/** All pids in the target's cgroup tree (first hierarchy that exists). */
export function cgroupPids(name: string): number[] {
  const pids = new Set<number>();
  for (const top of cgroupDirs(name)) {
    for (const d of subdirsDepthFirst(top)) {
      try {
        for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
      } catch { /* gone */ }
    }
  }
  return [...pids];
}

/** Kills every process in the target's cgroups (cgroup.kill where the kernel has it) and removes them depth-first. */
export async function destroyCgroup(name: string, timeoutMs = 10_000): Promise<void> {
  const dirs = cgroupDirs(name).filter((d) => existsSync(d));
  if (dirs.length === 0) return;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = cgroupPids(name);
    if (pids.length === 0) break;
    for (const d of dirs) {
      try { if (existsSync(join(d, 'cgroup.kill'))) writeFileSync(join(d, 'cgroup.kill'), '1'); } catch { /* v1 */ }
    }
    for (const p of pids) {
      try { process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (Date.now() > deadline) throw new Error(`cgroup ${name}: processes survive SIGKILL: ${pids.join(' ')}`);
    await sleep(30);
  }
  for (const top of dirs) {
    for (const d of subdirsDepthFirst(top)) {
      for (let i = 0; ; i++) {
        try { rmdirSync(d); break; } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (i > 50) throw new Error(`cannot remove cgroup ${d}: ${code}`);
          await sleep(20); // EBUSY while the kernel finishes reaping
        }
      }
    }
  }
}

/** Names of per-target cgroups that exist now (for the sweeper). */
export function listCgroups(): string[] {
  const names = new Set<string>();
  for (const h of hierarchies()) {
    try {
      for (const e of readdirSync(join(h, GROUP), { withFileTypes: true })) if (e.isDirectory()) names.add(e.name);
    } catch { /* none yet */ }
  }
  return [...names];
}

/** Synchronous variant of destroyCgroup for process 'exit' handlers (best effort, never throws). */
export function destroyCgroupSync(name: string): void {
  const dirs = cgroupDirs(name).filter((d) => existsSync(d));
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 200; i++) {
    const pids = cgroupPids(name);
    if (pids.length === 0) break;
    for (const d of dirs) {
      try { writeFileSync(join(d, 'cgroup.kill'), '1'); } catch { /* v1 */ }
    }
    for (const p of pids) {
      try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    }
    Atomics.wait(nap, 0, 0, 20);
  }
  for (const top of dirs) {
    for (const d of subdirsDepthFirst(top)) {
      for (let i = 0; i < 50; i++) {
        try { rmdirSync(d); break; } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
          Atomics.wait(nap, 0, 0, 20);
        }
      }
    }
  }
}
