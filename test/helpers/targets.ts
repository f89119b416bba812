/**
 * Real, disposable SSH targets for integration tests (run as root).
 *
 *   import { startTargets, stopAllTargets, canRunTargets } from '../helpers/targets.js';
 *   const [a, b] = await startTargets(2);                   // full: systemd as PID 1 (systemd-nspawn -b)
 *   const [l] = await startTargets(1, { kind: 'light' });   // light: sshd -D in a chroot, no systemd
 *   spawn('ssh', [...a.sshArgs(), 'true']);                 // -F /dev/null -i key, strict known_hosts
 *   await a.exec(['cat', '/proc/1/comm']);                  // -> { stdout: 'systemd\n', stderr, exitCode }
 *   afterAll(() => stopAllTargets());
 *
 * TestTarget
 *   name, kind, host (IP on 10.213.0.0/24), port 22, user 'root'
 *   privateKeyPath/publicKey   client ed25519 key, one per test process, in authorized_keys of root
 *   knownHostsLine             "10.213.0.11 ssh-ed25519 AAAA..." (host key generated before boot)
 *   knownHostsPath             a file holding just that line
 *   exec(argv, {stdin, timeoutMs})   runs argv inside the target via nsenter (bypasses SSH and the
 *                              code under test); resolves for any exit code; output is not trimmed
 *   replaceHostKey()           new host key + sshd restart; returns the new known_hosts line
 *   addUser(name, {sudo})      user with the client key; sudo 'nopasswd' | 'password' | 'none';
 *                              resolves { name, password } (password only for 'password')
 *   stop()                     idempotent teardown
 *
 * Layout: rootfs.ts (mmdebstrap + cache), network.ts (bridge, netns, slots), cgroup.ts,
 * nspawn.ts (full), light.ts (light), aptproxy.ts (ensureAptProxy). Every target has
 * /etc/apt/apt.conf.d/01proxy -> http://10.213.0.1:3142; call ensureAptProxy() before using apt.
 * Leftovers of a crashed run (slots whose owner pid is gone) are swept on the first start.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APT_PROXY_CONF } from './aptproxy.js';
import { createCgroup, destroyCgroup, destroyCgroupSync, listCgroups } from './cgroup.js';
import { startLight } from './light.js';
import { withLock } from './lock.js';
import {
  allocateSlot, createNetns, deleteNetns, ensureHostNetwork, slotInfo, slotOrphaned, SLOTS_DIR, type Slot,
} from './network.js';
import { containerLeader, DOCKER_NSPAWN_FLAGS, startContainer } from './nspawn.js';
import { pidAlive, run, runOk, sleep, tailFile, TARGET_ENV, which, type ExecResult } from './proc.js';
import { CACHE_DIR, ensureRootfs } from './rootfs.js';

export type TargetKind = 'full' | 'light';
export type SudoMode = 'nopasswd' | 'password' | 'none';

export interface TestTarget {
  readonly name: string;
  readonly kind: TargetKind;
  readonly host: string;
  readonly port: number;
  readonly user: 'root';
  readonly privateKeyPath: string;
  readonly publicKey: string;
  readonly knownHostsLine: string;
  readonly knownHostsPath: string;
  /** Console output (full) or sshd -e log (light). */
  readonly logPath: string;
  /** argv for `ssh` up to the destination: ['-F','/dev/null','-i',key,...,'root@IP']; append the command. */
  sshArgs(user?: string): string[];
  exec(argv: string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<ExecResult>;
  replaceHostKey(): Promise<string>;
  addUser(name: string, opts: { sudo: SudoMode }): Promise<{ name: string; password: string | null }>;
  stop(): Promise<void>;
}

export interface StartOptions {
  kind?: TargetKind;
  /** How long to wait for a completed SSH login per target (default 60 s). */
  readyTimeoutMs?: number;
  /**
   * A target that can run Docker (full only): keyring syscalls allowed, and the cgroup v1
   * controllers (which nspawn mounts read-only) remounted read-write at boot by a unit.
   */
  docker?: boolean;
  /** A full target that boots again when it reboots (`systemctl reboot`), like a real machine; otherwise it stays down. */
  rebootable?: boolean;
  /** Lower layer to boot instead of the base rootfs (full only), e.g. ensureCloudRootfs() from cloud-rootfs.ts. */
  lowerDir?: string;
  /** Files written into the target's root before it boots (path inside the target -> content), e.g. a cloud-init seed. */
  files?: Readonly<Record<string, string>>;
}

/** Remounts the cgroup v1 controllers read-write before dockerd starts (a no-op on cgroup v2). */
const DOCKER_CGROUP_UNIT = [
  '[Unit]', 'Description=zanuri test: cgroup controllers writable for dockerd', 'DefaultDependencies=no', 'Before=sysinit.target docker.service containerd.service',
  '[Service]', 'Type=oneshot', 'RemainAfterExit=yes',
  'ExecStart=/bin/sh /usr/local/sbin/zanuri-test-cgroup-rw',
  '[Install]', 'WantedBy=sysinit.target', '',
].join('\n');
/** A bind mount that nspawn made read-only needs remount,bind,rw. */
const DOCKER_CGROUP_SCRIPT = 'for d in /sys/fs/cgroup/*/; do\n  mountpoint -q "$d" && { mount -o remount,rw "$d" || mount -o remount,bind,rw "$d"; }\ndone\ntrue\n';

const REQUIRED_TOOLS = ['ip', 'mount', 'umount', 'nsenter', 'unshare', 'flock', 'chroot', 'tar', 'ssh', 'ssh-keygen'];
const FULL_TOOLS = ['systemd-nspawn'];
const BUILD_TOOLS = ['mmdebstrap'];

/** Root + tools + kernel features present? Tests use this to skip outside CI (and to fail loudly in CI). */
export function canRunTargets(): { ok: true } | { ok: false; why: string } {
  if (process.platform !== 'linux') return { ok: false, why: 'test targets need Linux' };
  if (process.getuid?.() !== 0) return { ok: false, why: 'test targets need root' };
  const missing = [...REQUIRED_TOOLS, ...FULL_TOOLS, ...BUILD_TOOLS].filter((t) => !which(t));
  if (!existsSync('/usr/sbin/sshd')) missing.push('sshd (openssh-server)');
  if (missing.length) return { ok: false, why: `missing tools: ${missing.join(', ')}` };
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return { ok: false, why: 'kernel lacks overlayfs' };
  if (!existsSync('/sys/fs/cgroup/cgroup.procs') && !existsSync('/sys/fs/cgroup/systemd/cgroup.procs') &&
      !existsSync('/sys/fs/cgroup/unified/cgroup.procs')) return { ok: false, why: 'no cgroup hierarchy mounted' };
  return { ok: true };
}

// ---------- per-process client key ----------

type ClientKey = { dir: string; privateKeyPath: string; publicKey: string };
let clientKey: Promise<ClientKey> | null = null;

/** One client key per process; the promise is memoized so concurrent startTargets() calls share it. */
function getClientKey(): Promise<ClientKey> {
  clientKey ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), `zanuri-keys-${process.pid}-`)); // pid: the sweeper removes dead owners' dirs
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const privateKeyPath = join(dir, 'id_ed25519');
    await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'zanuri-test-client', '-f', privateKeyPath]);
    return { dir, privateKeyPath, publicKey: readFileSync(`${privateKeyPath}.pub`, 'utf8').trim() };
  })();
  clientKey.catch(() => { clientKey = null; });
  return clientKey;
}

/** The per-process client key's public half (in every target's root authorized_keys), before any target starts. */
export async function clientPublicKey(): Promise<string> {
  return (await getClientKey()).publicKey;
}

// ---------- mounts ----------

function isMountpoint(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path);
}

async function unmount(path: string): Promise<void> {
  for (let i = 0; i < 20 && isMountpoint(path); i++) {
    const r = await run(['umount', path]);
    if (r.exitCode !== 0) await sleep(50);
  }
  if (isMountpoint(path)) await run(['umount', '-l', path]);
}

/** Removes everything a slot may own. Idempotent; also used by the sweeper. */
async function teardownSlot(slot: Slot): Promise<void> {
  await destroyCgroup(slot.name);
  await unmount(join(slot.dir, 'merged'));
  await deleteNetns(slot);
  if (!isMountpoint(join(slot.dir, 'merged'))) rmSync(slot.dir, { recursive: true, force: true });
}

let swept: Promise<void> | null = null;

/** Cleans leftovers of crashed runs: slots whose owner process is gone, and cgroups/netns without a slot. */
export function sweepOrphans(): Promise<void> {
  swept ??= withLock(join(CACHE_DIR, 'sweep.lock'), async () => {
    const slots = existsSync(SLOTS_DIR) ? readdirSync(SLOTS_DIR).filter((n) => /^\d+$/.test(n)).map(Number) : [];
    for (const i of slots) if (slotOrphaned(i)) await teardownSlot(slotInfo(i));
    const live = new Set(existsSync(SLOTS_DIR) ? readdirSync(SLOTS_DIR) : []);
    for (const cg of listCgroups()) {
      const m = /^zanuri-t(\d+)$/.exec(cg);
      if (m && !live.has(m[1]!)) await destroyCgroup(cg);
    }
    // vitest may end a worker without 'exit' firing: remove client-key dirs of dead processes
    for (const n of readdirSync(tmpdir())) {
      const m = /^zanuri-keys-(\d+)-/.exec(n);
      if (m && !pidAlive(Number(m[1]))) rmSync(join(tmpdir(), n), { recursive: true, force: true });
    }
    const netns = await run(['ip', 'netns', 'list']);
    for (const line of netns.stdout.split('\n')) {
      const m = /^zanuri-t(\d+)\b/.exec(line);
      if (m && !live.has(m[1]!)) await deleteNetns(slotInfo(Number(m[1])));
    }
  });
  return swept;
}

// ---------- targets ----------

const started = new Set<TestTarget>();
const startedSlots = new Map<TestTarget, Slot>();

// A test file that forgets stopAllTargets() still leaves nothing behind when its process exits
// normally; a killed process leaves leftovers for the sweeper of the next run.
process.once('exit', () => {
  for (const slot of startedSlots.values()) {
    try {
      destroyCgroupSync(slot.name);
      spawnSync('umount', ['-l', join(slot.dir, 'merged')]);
      spawnSync('ip', ['link', 'del', slot.hostVeth]);
      spawnSync('ip', ['netns', 'del', slot.netns]);
      rmSync(slot.dir, { recursive: true, force: true });
    } catch { /* best effort */ }
  }
});

/** Stops every target this process started (use in afterAll). */
export async function stopAllTargets(): Promise<void> {
  await Promise.all([...started].map((t) => t.stop()));
}

export async function startTargets(count: number, options: StartOptions = {}): Promise<TestTarget[]> {
  const can = canRunTargets();
  if (!can.ok) throw new Error(`cannot start test targets: ${can.why}`);
  const [{ baseDir }, key] = await Promise.all([ensureRootfs(), getClientKey(), ensureHostNetwork()]);
  await sweepOrphans();
  const results = await Promise.allSettled(
    Array.from({ length: count }, () => startOne(options.kind ?? 'full', options.lowerDir ?? baseDir, key, options.readyTimeoutMs ?? 60_000, options.docker ?? false, options.rebootable ?? false, options.files ?? {})),
  );
  const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  if (failed.length) {
    await Promise.all(ok.map((t) => t.stop()));
    throw failed[0];
  }
  return ok;
}

async function writeHostKey(etcSsh: string, name: string): Promise<string> {
  const keyPath = join(etcSsh, 'ssh_host_ed25519_key');
  rmSync(keyPath, { force: true });
  rmSync(`${keyPath}.pub`, { force: true });
  await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `root@${name}`, '-f', keyPath]);
  const [type, b64] = readFileSync(`${keyPath}.pub`, 'utf8').trim().split(/\s+/);
  return `${type} ${b64}`;
}

function writeFile(path: string, content: string, mode: number): void {
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
}

async function startOne(
  kind: TargetKind, baseDir: string, key: ClientKey, readyTimeoutMs: number, docker = false, rebootable = false,
  files: Readonly<Record<string, string>> = {},
): Promise<TestTarget> {
  const slot = allocateSlot(kind);
  try {
    const merged = join(slot.dir, 'merged');
    for (const d of ['upper', 'work', 'merged']) mkdirSync(join(slot.dir, d), { recursive: true });
    await createNetns(slot);
    await runOk(['mount', '-t', 'overlay', 'overlay', '-o',
      `lowerdir=${baseDir},upperdir=${join(slot.dir, 'upper')},workdir=${join(slot.dir, 'work')}`, merged]);

    // stamp the target: identity, host key, access, apt proxy
    writeFile(join(merged, 'etc/hostname'), `${slot.name}\n`, 0o644);
    writeFile(join(merged, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${slot.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`, 0o644);
    const hostKey = await writeHostKey(join(merged, 'etc/ssh'), slot.name);
    writeFile(join(merged, 'etc/ssh/sshd_config.d/00-zanuri-test.conf'),
      '# test target: one host key, known to the test before boot\nHostKey /etc/ssh/ssh_host_ed25519_key\n', 0o644);
    mkdirSync(join(merged, 'root/.ssh'), { recursive: true, mode: 0o700 });
    chmodSync(join(merged, 'root/.ssh'), 0o700);
    writeFile(join(merged, 'root/.ssh/authorized_keys'), `${key.publicKey}\n`, 0o600);
    writeFile(join(merged, 'etc/apt/apt.conf.d/01proxy'), APT_PROXY_CONF, 0o644);
    if (docker) {
      mkdirSync(join(merged, 'usr/local/sbin'), { recursive: true });
      writeFile(join(merged, 'usr/local/sbin/zanuri-test-cgroup-rw'), DOCKER_CGROUP_SCRIPT, 0o755);
      writeFile(join(merged, 'etc/systemd/system/zanuri-test-cgroup-rw.service'), DOCKER_CGROUP_UNIT, 0o644);
      mkdirSync(join(merged, 'etc/systemd/system/sysinit.target.wants'), { recursive: true });
      symlinkSync('../zanuri-test-cgroup-rw.service', join(merged, 'etc/systemd/system/sysinit.target.wants/zanuri-test-cgroup-rw.service'));
    }

    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(merged, path, '..'), { recursive: true });
      writeFile(join(merged, path), content, 0o600);
    }

    createCgroup(slot.name);
    const logPath = join(slot.dir, kind === 'full' ? 'console.log' : 'sshd.log');
    const pid = kind === 'full' ? startContainer(slot, merged, logPath, docker ? DOCKER_NSPAWN_FLAGS : [], { rebootable }) : startLight(slot, merged, logPath);
    const target = makeTarget(slot, kind, key, hostKey, pid, logPath);
    started.add(target);
    startedSlots.set(target, slot);
    await waitForSsh(target, pid, readyTimeoutMs, 'boot');
    return target;
  } catch (e) {
    await teardownSlot(slot).catch(() => undefined);
    throw e;
  }
}

/** Waits until `ssh ... true` completes with strict host key checking; fails with the target's log. */
async function waitForSsh(t: TestTarget, pid: number, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  let last: ExecResult | null = null;
  while (Date.now() - t0 < timeoutMs) {
    if (!pidAlive(pid)) break;
    last = await run(['ssh', ...t.sshArgs(), '-o', 'ConnectTimeout=2', 'true'], { timeoutMs: 10_000 });
    if (last.exitCode === 0) return;
    await sleep(150);
  }
  const why = pidAlive(pid) ? `not reachable over SSH within ${timeoutMs} ms` : `its process ${pid} exited`;
  throw new Error(
    `test target ${t.name} (${t.kind}, ${t.host}) ${what}: ${why}\n` +
      `last ssh attempt: exit ${last?.exitCode ?? 'none'} ${last?.stderr.trim() ?? ''}\n` +
      `--- ${t.logPath} (tail) ---\n${tailFile(t.logPath)}`,
  );
}

const ADD_USER = [
  'set -eu',
  'u=$1; mode=$2; key=$3',
  'id "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$u"',
  'home=$(getent passwd "$u" | cut -d: -f6)',
  'install -d -m 700 -o "$u" -g "$u" "$home/.ssh"',
  'printf \'%s\\n\' "$key" > "$home/.ssh/authorized_keys"',
  'chown "$u:$u" "$home/.ssh/authorized_keys"; chmod 600 "$home/.ssh/authorized_keys"',
  'f=/etc/sudoers.d/zanuri-test-$u',
  'case $mode in',
  '  nopasswd) usermod -p "*" "$u"; printf \'%s ALL=(ALL:ALL) NOPASSWD:ALL\\n\' "$u" > "$f";;',
  '  password) chpasswd; printf \'%s ALL=(ALL:ALL) ALL\\n\' "$u" > "$f";;',
  '  none) usermod -p "*" "$u"; rm -f "$f";;',
  'esac',
  'if [ -f "$f" ]; then chmod 440 "$f"; visudo -cqf "$f"; fi',
].join('\n');

function makeTarget(
  slot: Slot, kind: TargetKind, key: ClientKey, hostKey: string, pid: number, logPath: string,
): TestTarget {
  const merged = join(slot.dir, 'merged');
  const knownHostsPath = join(key.dir, `known_hosts.${slot.name}`);
  let knownHostsLine = `${slot.ip} ${hostKey}`;
  writeFileSync(knownHostsPath, `${knownHostsLine}\n`);
  let stopped: Promise<void> | null = null;

  const nsenterArgs = (): string[] => {
    if (kind === 'light') return ['--mount', '--uts', '--net', '--root', '--wd', '--target', String(pid)];
    const leader = containerLeader(slot);
    if (leader === null) throw new Error(`test target ${slot.name}: container PID 1 not found (stopped?)`);
    return ['--mount', '--uts', '--ipc', '--net', '--pid', '--root', '--wd', '--target', String(leader)];
  };

  const t: TestTarget = {
    name: slot.name,
    kind,
    host: slot.ip,
    port: 22,
    user: 'root',
    privateKeyPath: key.privateKeyPath,
    publicKey: key.publicKey,
    get knownHostsLine() { return knownHostsLine; },
    knownHostsPath,
    logPath,
    sshArgs(user = 'root') {
      return ['-F', '/dev/null', '-i', key.privateKeyPath, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
        '-o', `UserKnownHostsFile=${knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes',
        '-o', 'GlobalKnownHostsFile=/dev/null', '-p', '22', `${user}@${slot.ip}`];
    },
    async exec(argv, opts = {}) {
      if (stopped) throw new Error(`test target ${slot.name} is stopped`);
      return run(['nsenter', ...nsenterArgs(), '--', ...argv], {
        stdin: opts.stdin, env: { ...TARGET_ENV }, cleanEnv: true, timeoutMs: opts.timeoutMs ?? 120_000,
      });
    },
    async replaceHostKey() {
      const newKey = await writeHostKey(join(merged, 'etc/ssh'), slot.name);
      if (kind === 'full') {
        const r = await t.exec(['systemctl', 'restart', 'ssh.service']);
        if (r.exitCode !== 0) throw new Error(`systemctl restart ssh in ${slot.name}: ${r.stderr}`);
      } else {
        process.kill(pid, 'SIGHUP'); // sshd re-execs itself and reloads its host keys
      }
      knownHostsLine = `${slot.ip} ${newKey}`;
      writeFileSync(knownHostsPath, `${knownHostsLine}\n`);
      await waitForSsh(t, pid, 30_000, 'after host key change');
      return knownHostsLine;
    },
    async addUser(name, opts) {
      if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(name)) throw new Error(`addUser: bad user name ${JSON.stringify(name)}`);
      const password = opts.sudo === 'password' ? randomBytes(12).toString('base64url') : null;
      const r = await t.exec(['sh', '-c', ADD_USER, 'sh', name, opts.sudo, key.publicKey], {
        stdin: password ? `${name}:${password}\n` : '',
      });
      if (r.exitCode !== 0) throw new Error(`addUser ${name} in ${slot.name} failed (${r.exitCode}): ${r.stderr}`);
      return { name, password };
    },
    stop() {
      stopped ??= (async () => {
        started.delete(t);
        await teardownSlot(slot);
        startedSlots.delete(t);
      })();
      return stopped;
    },
  };
  return t;
}
