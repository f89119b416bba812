/**
 * The test-target helpers themselves: real SSH targets built on this machine (needs root).
 * Outside CI a non-root run skips these; in CI (CI set) a missing prerequisite fails instead.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { slotInfo } from '../helpers/network.js';
import { run } from '../helpers/proc.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();

/** Plain OpenSSH client, strict host key checking against exactly `knownHostsLine`. */
async function sshWithKnownHosts(t: TestTarget, knownHostsLine: string, user = 'root', command: string[] = ['true'], stdin?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'zanuri-kh-'));
  try {
    const kh = join(dir, 'known_hosts');
    writeFileSync(kh, `${knownHostsLine}\n`);
    return await run(['ssh', '-F', '/dev/null', '-i', t.privateKeyPath, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5',
      '-o', `UserKnownHostsFile=${kh}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes',
      `${user}@${t.host}`, ...command], { stdin, timeoutMs: 30_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('test target addressing', () => {
  it('derives a fixed IP, MAC and names from the slot index, so a reused IP keeps its MAC', () => {
    expect(slotInfo(0)).toMatchObject({ ip: '10.213.0.10', mac: '02:7a:6e:00:00:00', netns: 'zanuri-t0', hostVeth: 'zt0h' });
    expect(slotInfo(199)).toMatchObject({ ip: '10.213.0.209', mac: '02:7a:6e:00:00:c7', hostVeth: 'zt199h' });
    expect(slotInfo(7)).toEqual(slotInfo(7));
  });
});

describe.skipIf(!can.ok && !process.env.CI)('test targets', () => {
  let full: TestTarget[] = [];
  let light: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    const [f, l] = await Promise.all([startTargets(2), startTargets(1, { kind: 'light' })]);
    full = f;
    light = l[0]!;
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  it('as root: every target accepts root over SSH, checked strictly against its knownHostsLine', async () => {
    for (const t of [...full, light]) {
      expect(t.knownHostsLine).toMatch(new RegExp(`^${t.host.replace(/\./g, '\\.')} ssh-ed25519 AAAA\\S+$`));
      const r = await sshWithKnownHosts(t, t.knownHostsLine);
      expect(r, `${t.name}: ${r.stderr}`).toMatchObject({ exitCode: 0 });
    }
  });

  it('as root: targets started concurrently in one process share one client key', () => {
    expect(new Set([...full, light].map((t) => t.privateKeyPath)).size).toBe(1);
    expect(new Set([...full, light].map((t) => t.host)).size).toBe(3);
  });

  it('as root: a full target boots systemd as PID 1', async () => {
    for (const t of full) {
      const r = await t.exec(['cat', '/proc/1/comm']);
      expect(r).toEqual({ stdout: 'systemd\n', stderr: '', exitCode: 0 });
    }
  });

  it('as root: a light target runs sshd without systemd, under its own hostname', async () => {
    const r = await light.exec(['hostname']);
    expect(r.stdout.trim()).toBe(light.name);
    const comm = await light.exec(['cat', '/proc/1/comm']);
    expect(comm.stdout.trim()).not.toBe('systemd');
  });

  it('as root: exec passes stdin and reports the exit code without a shell in between', async () => {
    const t = full[0]!;
    expect(await t.exec(['cat'], { stdin: "it's $(not) `run`\n" })).toMatchObject({ stdout: "it's $(not) `run`\n", exitCode: 0 });
    expect(await t.exec(['sh', '-c', 'echo oops >&2; exit 7'])).toEqual({ stdout: '', stderr: 'oops\n', exitCode: 7 });
  });

  it('as root: the two full targets reach each other on the test bridge', async () => {
    const [a, b] = full as [TestTarget, TestTarget];
    const ping = await a.exec(['ping', '-c', '1', '-W', '3', b.host]);
    expect(ping.exitCode, ping.stdout + ping.stderr).toBe(0);
    const banner = await b.exec(['bash', '-c', 'exec 3<>"/dev/tcp/$1/22"; head -c 8 <&3', 'bash', a.host], { timeoutMs: 10_000 });
    expect(banner.stdout).toBe('SSH-2.0-');
  });

  it('as root: addUser gives a user key login with passwordless sudo, or sudo that needs the password', async () => {
    const t = full[0]!;
    const deploy = await t.addUser('deploy', { sudo: 'nopasswd' });
    expect(deploy.password).toBeNull();
    expect(await sshWithKnownHosts(t, t.knownHostsLine, 'deploy', ['sudo', '-n', 'id', '-u'])).toMatchObject({ stdout: '0\n', exitCode: 0 });

    const ops = await t.addUser('ops', { sudo: 'password' });
    expect(ops.password).toMatch(/^\S{12,}$/);
    const noPw = await sshWithKnownHosts(t, t.knownHostsLine, 'ops', ['sudo', '-n', 'true']);
    expect(noPw.exitCode).not.toBe(0);
    expect(noPw.stderr).toMatch(/password is required/);
    const withPw = await sshWithKnownHosts(t, t.knownHostsLine, 'ops', ['sudo', '-S', '--prompt=', 'id', '-u'], `${ops.password}\n`);
    expect(withPw).toMatchObject({ stdout: '0\n', exitCode: 0 });

    const plain = await light.addUser('plain', { sudo: 'none' });
    expect(await sshWithKnownHosts(light, light.knownHostsLine, plain.name, ['id', '-un'])).toMatchObject({ stdout: 'plain\n', exitCode: 0 });
  });

  it.each(['full', 'light'] as const)('as root: replaceHostKey makes the old known_hosts line fail as a changed host key (%s)', async (kind) => {
    const t = kind === 'full' ? full[1]! : light;
    const oldLine = t.knownHostsLine;
    const newLine = await t.replaceHostKey();
    expect(newLine).not.toBe(oldLine);
    expect(t.knownHostsLine).toBe(newLine);
    const refused = await sshWithKnownHosts(t, oldLine);
    expect(refused.exitCode).toBe(255);
    expect(refused.stderr).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
    expect(await sshWithKnownHosts(t, newLine)).toMatchObject({ exitCode: 0 });
  });

  it('as root: apt-get installs a package through the caching proxy in a full target', async () => {
    const proxy = await ensureAptProxy();
    const t = full[0]!;
    expect((await t.exec(['cat', '/etc/apt/apt.conf.d/01proxy'])).stdout).toContain(proxy.url);
    const update = await t.exec(['apt-get', '-q', 'update'], { timeoutMs: 240_000 });
    expect(update.exitCode, update.stdout + update.stderr).toBe(0);
    const install = await t.exec(['apt-get', '-qy', 'install', '--no-install-recommends', 'hello'], { timeoutMs: 240_000 });
    expect(install.exitCode, install.stdout + install.stderr).toBe(0);
    expect(await t.exec(['hello'])).toMatchObject({ stdout: 'Hello, world!\n', exitCode: 0 });
  }, 480_000);
});
