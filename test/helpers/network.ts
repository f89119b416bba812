/**
 * Test network: one bridge on the host, one network namespace per target.
 *
 *   bridge  zbr0  10.213.0.1/24   (persists between runs; forwarding off on it, so
 *                                  nothing from a target ever leaves this machine)
 *   slot i  netns zanuri-t<i>, veth zt<i>h (host side, in zbr0) <-> eth0 (in the netns)
 *           IP 10.213.0.<10+i>, MAC 02:7a:6e:00:00:<i> (fixed per slot: a reused IP with a
 *           new MAC stalls the first connect while ARP caches catch up)
 *
 * Slots are allocated with an atomic mkdir of /var/tmp/zanuri-test/slots/<i> that records the
 * owner's pid and start time, so parallel vitest workers never collide and the sweeper can
 * tell a crashed owner's leftovers from a live neighbour's targets.
 * Override the subnet with ZANURI_TEST_NET=10.213.0 (first three octets).
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withLock } from './lock.js';
import { pidAlive, pidStartTime, run, runOk } from './proc.js';
import { CACHE_DIR } from './rootfs.js';

export const BRIDGE = 'zbr0';
export const NET_PREFIX = process.env.ZANURI_TEST_NET ?? '10.213.0';
export const BRIDGE_IP = `${NET_PREFIX}.1`;
export const MAX_SLOTS = 200;
export const STATE_DIR = process.env.ZANURI_TEST_STATE ?? '/var/tmp/zanuri-test';
export const SLOTS_DIR = join(STATE_DIR, 'slots');

export interface Slot { index: number; name: string; netns: string; hostVeth: string; ip: string; mac: string; dir: string }

export function slotInfo(index: number): Slot {
  return {
    index,
    name: `zanuri-t${index}`,
    netns: `zanuri-t${index}`,
    hostVeth: `zt${index}h`,
    ip: `${NET_PREFIX}.${10 + index}`,
    mac: `02:7a:6e:00:${((index >> 8) & 0xff).toString(16).padStart(2, '0')}:${(index & 0xff).toString(16).padStart(2, '0')}`,
    dir: join(SLOTS_DIR, String(index)),
  };
}

/** Creates the bridge and raises inotify limits (many containers need them). Idempotent. */
export async function ensureHostNetwork(): Promise<void> {
  await withLock(join(CACHE_DIR, 'network.lock'), async () => {
    const show = await run(['ip', '-o', 'addr', 'show', 'dev', BRIDGE]);
    if (show.exitCode !== 0) {
      const add = await run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
      if (add.exitCode !== 0 && !add.stderr.includes('File exists')) throw new Error(`ip link add ${BRIDGE}: ${add.stderr}`);
    }
    if (!show.stdout.includes(`${BRIDGE_IP}/24`)) {
      const a = await run(['ip', 'addr', 'add', `${BRIDGE_IP}/24`, 'dev', BRIDGE]);
      if (a.exitCode !== 0 && !a.stderr.includes('File exists')) throw new Error(`ip addr add: ${a.stderr}`);
    }
    await runOk(['ip', 'link', 'set', BRIDGE, 'up']);
    // targets may talk to the host and to each other, never beyond
    try {
      writeSysctl(`/proc/sys/net/ipv4/conf/${BRIDGE}/forwarding`, 0, 'exact');
    } catch (e) {
      if (readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== '0') {
        throw new Error(`cannot turn off forwarding on ${BRIDGE} while ip_forward is on: ${String(e)}`);
      }
    }
    // more than ~18 containers exhaust the default 128 inotify instances; best effort
    try { writeSysctl('/proc/sys/fs/inotify/max_user_instances', 8192, 'atLeast'); } catch { /* read-only /proc/sys */ }
    try { writeSysctl('/proc/sys/fs/inotify/max_user_watches', 524288, 'atLeast'); } catch { /* read-only /proc/sys */ }
  });
}

function writeSysctl(path: string, value: number, mode: 'exact' | 'atLeast'): void {
  const cur = Number(readFileSync(path, 'utf8').trim());
  if (mode === 'exact' ? cur !== value : cur < value) writeFileSync(path, String(value));
}

interface Owner { pid: number; start: string | null; kind?: string }

/** Atomically claims a free slot for this process. */
export function allocateSlot(kind: string): Slot {
  mkdirSync(SLOTS_DIR, { recursive: true });
  const pool = Number(process.env.VITEST_POOL_ID ?? '1');
  // start each worker in its own region to keep contention low; wrap around when full
  const first = ((Number.isFinite(pool) ? pool - 1 : 0) * 16) % MAX_SLOTS;
  for (let k = 0; k < MAX_SLOTS; k++) {
    const slot = slotInfo((first + k) % MAX_SLOTS);
    try {
      mkdirSync(slot.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    const owner: Owner = { pid: process.pid, start: pidStartTime(process.pid), kind };
    writeFileSync(join(slot.dir, 'owner.json'), JSON.stringify(owner));
    return slot;
  }
  throw new Error(`no free test-target slot in ${SLOTS_DIR} (all ${MAX_SLOTS} taken)`);
}

/** True when the slot's owner process is gone (crashed run) or the owner file is unreadable. */
export function slotOrphaned(index: number): boolean {
  try {
    const owner = JSON.parse(readFileSync(join(slotInfo(index).dir, 'owner.json'), 'utf8')) as Owner;
    return !pidAlive(owner.pid) || pidStartTime(owner.pid) !== owner.start;
  } catch (e) {
    // a slot dir without owner.json is either mid-allocation (ms) or a crash: only call it orphaned if old
    try {
      return Date.now() - statSync(slotInfo(index).dir).mtimeMs > 30_000;
    } catch {
      return false; // already gone
    }
  }
}

/** Creates netns + veth pair, configures eth0 inside (address, fixed MAC, default route via the bridge). */
export async function createNetns(slot: Slot): Promise<void> {
  await deleteNetns(slot); // leftovers with the same name would make `add` fail
  await runOk(['ip', 'netns', 'add', slot.netns]);
  await runOk(['ip', 'link', 'add', slot.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', slot.netns]);
  await runOk(['ip', 'link', 'set', slot.hostVeth, 'master', BRIDGE, 'up']);
  const ns = ['ip', '-n', slot.netns];
  await runOk([...ns, 'link', 'set', 'lo', 'up']);
  await runOk([...ns, 'link', 'set', 'eth0', 'address', slot.mac]);
  await runOk([...ns, 'addr', 'add', `${slot.ip}/24`, 'dev', 'eth0']);
  await runOk([...ns, 'link', 'set', 'eth0', 'up']);
  await runOk([...ns, 'route', 'add', 'default', 'via', BRIDGE_IP]);
}

/** Deletes veth first (`ip netns del` is asynchronous), then the netns. Idempotent. */
export async function deleteNetns(slot: Slot): Promise<void> {
  await run(['ip', 'link', 'del', slot.hostVeth]);
  await run(['ip', 'netns', 'del', slot.netns]);
}
