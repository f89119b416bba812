/**
 * zanuri check against real SSH targets (needs root: systemd-nspawn and network namespaces).
 * Outside CI a non-root run skips; in CI a missing prerequisite fails.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostProbeScript, parseHostFacts } from '../../src/facts/host.js';
import { SshTransport } from '../../src/transport/ssh.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));

interface Run { code: number; stdout: string; stderr: string }

function zanuri(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe.skipIf(!can.ok && !process.env['CI'])('zanuri check --host against real SSH targets (needs root)', () => {
  let full: TestTarget;
  let bastion: TestTarget;
  let inner: TestTarget;
  let dir: string;
  let knownHosts: string;

  const access = (): string[] => ['--known-hosts', knownHosts, '--identity', full.privateKeyPath];

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    const fulls = await startTargets(1);
    const lights = await startTargets(2, { kind: 'light' });
    [full] = fulls as [TestTarget];
    [bastion, inner] = lights as [TestTarget, TestTarget];
    dir = mkdtempSync(join(tmpdir(), 'zanuri-check-remote-'));
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, [full, bastion, inner].map((t) => t.knownHostsLine).join('\n') + '\n');
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  it('checks several hosts in parallel, each in one round trip, with correct facts', async () => {
    const run = await zanuri(['check', '--json', ...access(), '--host', `root@${full.host}`, '--host', `root@${bastion.host}`, '--host', `root@${inner.host}`]);
    expect(run.stderr).toBe('');
    const report = JSON.parse(run.stdout);
    expect(report.hosts.filter((h: { ok: boolean }) => !h.ok)).toEqual([]);
    expect(run.code).toBe(0);
    expect(report.hosts).toHaveLength(3);
    for (const host of report.hosts) {
      expect(host).toMatchObject({ ok: true, roundTrips: 1 });
      expect(host.facts.os).toMatchObject({ id: 'debian', versionId: '12' });
    }
    // The full target boots systemd as PID 1; the light one runs sshd without an init system.
    expect(report.hosts[0].facts.os.initSystem).toBe('systemd');
    expect(report.hosts[1].facts.os.initSystem).not.toBe('systemd');
  });

  it('reads the same facts over SSH as the probe run locally on that host', async () => {
    const transport = await SshTransport.connect(`root@${full.host}`, { knownHostsFile: knownHosts, identityFiles: [full.privateKeyPath] });
    let remote: string;
    try {
      remote = (await transport.run({ argv: ['sh', '-c', hostProbeScript] })).stdout;
      expect(transport.roundTrips).toBe(1);
    } finally {
      await transport.close();
    }
    const local = (await full.exec(['sh', '-c', hostProbeScript])).stdout;
    const strip = (facts: ReturnType<typeof parseHostFacts>) => ({ ...facts, filesystems: facts.filesystems.map((f) => ({ ...f, availableBytes: 0 })) });
    expect(strip(parseHostFacts(remote))).toEqual(strip(parseHostFacts(local)));
  });

  it('reaches a host through a bastion with ProxyJump from ssh config', async () => {
    const config = join(dir, 'ssh_config');
    writeFileSync(config, [
      'Host bastion', `  HostName ${bastion.host}`, '  User root', `  IdentityFile ${bastion.privateKeyPath}`,
      'Host inner', `  HostName ${inner.host}`, '  User root', '  ProxyJump bastion', `  IdentityFile ${inner.privateKeyPath}`, '',
    ].join('\n'));
    const run = await zanuri(['check', '--json', '--ssh-config', config, '--known-hosts', knownHosts, '--host', 'inner']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).hosts[0]).toMatchObject({ ok: true, target: `root@${inner.host}` });
    // The inner sshd saw the connection come from the bastion's address, not from this machine.
    expect(readFileSync(inner.logPath, 'utf8')).toMatch(new RegExp(`Accepted publickey for root from ${bastion.host.replaceAll('.', '\\.')} `));
  });

  it('refuses an unknown host key by default and records it only with --accept-new-host-key', async () => {
    const fresh = join(dir, 'fresh_known_hosts');
    const refused = await zanuri(['check', '--json', '--known-hosts', fresh, '--identity', full.privateKeyPath, '--host', `root@${full.host}`]);
    expect(refused.code).toBe(5);
    expect(JSON.parse(refused.stdout).hosts[0].error).toMatchObject({ code: 'HOST_KEY_UNKNOWN' });
    expect(JSON.parse(refused.stdout).hosts[0].error.message).toMatch(/SHA256:/);

    const accepted = await zanuri(['check', '--json', '--known-hosts', fresh, '--identity', full.privateKeyPath, '--accept-new-host-key', '--host', `root@${full.host}`]);
    expect(accepted.code).toBe(0);
    expect(readFileSync(fresh, 'utf8')).toContain(full.knownHostsLine.split(' ')[2]);

    const again = await zanuri(['check', '--json', '--known-hosts', fresh, '--identity', full.privateKeyPath, '--host', `root@${full.host}`]);
    expect(again.code).toBe(0);
  });

  it('honours StrictHostKeyChecking accept-new and UserKnownHostsFile from ssh config', async () => {
    const recorded = join(dir, 'config_known_hosts');
    const config = join(dir, 'ssh_config_accept_new');
    writeFileSync(config, ['Host fresh', `  HostName ${full.host}`, '  User root', `  IdentityFile ${full.privateKeyPath}`,
      '  StrictHostKeyChecking accept-new', `  UserKnownHostsFile ${recorded}`, ''].join('\n'));
    const run = await zanuri(['check', '--json', '--ssh-config', config, '--host', 'fresh']);
    expect(run.code).toBe(0);
    expect(readFileSync(recorded, 'utf8').trim()).toBe(full.knownHostsLine);
  });

  it('checks as a non-root user whose sudo needs a password without hanging (sudo -n), reporting ECC unknown', async () => {
    await full.addUser('ops', { sudo: 'password' });
    const run = await zanuri(['check', '--json', ...access(), '--host', `ops@${full.host}`]);
    expect(run.code).toBe(0);
    const [host] = JSON.parse(run.stdout).hosts;
    expect(host).toMatchObject({ ok: true, target: `ops@${full.host}` });
    expect(host.facts.memory.ecc).toBeNull();
    expect(host.facts.cpu.threads).toBeGreaterThan(0);
  });

  it('authenticates with a key held only by ssh-agent', async () => {
    const socket = join(dir, 'agent.sock');
    const agent = execFileSync('ssh-agent', ['-a', socket]).toString();
    const pid = /SSH_AGENT_PID=(\d+)/.exec(agent)?.[1];
    try {
      execFileSync('ssh-add', ['-q', full.privateKeyPath], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      // No -i and an empty ssh config: the agent is the only place the key can come from.
      const run = await zanuri(['check', '--json', '--known-hosts', knownHosts, '-F', '/dev/null', '--host', `root@${full.host}`], { SSH_AUTH_SOCK: socket });
      expect(JSON.parse(run.stdout).hosts[0]).toMatchObject({ ok: true });
      expect(run.code).toBe(0);
    } finally {
      if (pid) process.kill(Number(pid));
    }
  });

  it('exits 4 when the key is not accepted', async () => {
    const wrong = join(dir, 'wrong_key');
    await new Promise((resolve) => execFile('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrong], resolve));
    const run = await zanuri(['check', '--json', '--known-hosts', knownHosts, '--identity', wrong, '-F', '/dev/null', '--host', `root@${bastion.host}`]);
    expect(run.code).toBe(4);
    expect(JSON.parse(run.stdout).hosts[0].error).toMatchObject({ code: 'AUTH' });
  });

  it('exits 4 with a clear message for a host that does not answer', async () => {
    // An address on the test bridge that no target holds.
    const run = await zanuri(['check', ...access(), '--connect-timeout', '2', '--host', 'root@10.213.0.254']);
    expect(run.code).toBe(4);
    expect(run.stdout).toMatch(/cannot reach root@10\.213\.0\.254/);
  });

  it('refuses a changed host key with exit 5 and shows both fingerprints (runs last: it changes the key)', async () => {
    const before = knownHosts;
    await bastion.replaceHostKey();
    const run = await zanuri(['check', '--known-hosts', before, '--identity', bastion.privateKeyPath, '--host', `root@${bastion.host}`]);
    expect(run.code).toBe(5);
    expect(run.stdout).toMatch(/HOST_KEY_CHANGED .*has changed: it presented ssh-ed25519 SHA256:\S+ but known_hosts has ssh-ed25519 SHA256:\S+/);
  });
});
