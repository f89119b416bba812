/**
 * Hosts behind a bastion (ProxyJump) share one connection to it per zanuri process, against real
 * sshd targets (needs root). A bastion hardened by zanuri rate-limits its SSH port (`ufw limit`:
 * the 6th new connection from one address within 30 s is refused), so one connection per host
 * would fail from the 6th host on. Outside CI a non-root run skips; in CI a missing prerequisite fails.
 */
import { execFile } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionLostError } from '../../src/transport/session.js';
import { SshTransport, type SshConnectOptions } from '../../src/transport/ssh.js';
import { runOk, which } from '../helpers/proc.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const iptables = which('iptables');

interface Run { code: number; stdout: string; stderr: string }

function zanuri(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** "Accepted publickey" lines in the target's sshd log. sshd writes them through its monitor, so they can trail the login a little. */
const logins = (target: TestTarget): number => readFileSync(target.logPath, 'utf8').split('\n').filter((l) => l.includes('Accepted publickey')).length;

/** TCP connections the target's kernel has accepted (Tcp PassiveOpens of its network namespace): exact as soon as a login is done. */
async function opens(target: TestTarget): Promise<number> {
  const rows = (await target.exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Tcp:')).map((l) => l.trim().split(/\s+/));
  const [names, values] = rows as [string[], string[]];
  return Number(values[names.indexOf('PassiveOpens')]);
}

/** Waits (no deadline but the test's) until the sshd log shows at least `count` logins. */
async function loginsReach(target: TestTarget, count: number): Promise<number> {
  while (logins(target) < count) await new Promise((resolve) => setTimeout(resolve, 50));
  return logins(target);
}

describe.skipIf(!can.ok && !process.env['CI'])('one shared connection to a bastion per process (needs root)', () => {
  let bastion: TestTarget;
  let inner: TestTarget[];
  let dir: string;
  let knownHosts: string;
  let config: string;

  const options = (): SshConnectOptions => ({ configFile: config, knownHostsFile: knownHosts });

  /** zanuri check --json for the first `n` inner hosts, by their ssh config aliases. */
  const check = (n: number): Promise<Run> =>
    zanuri(['check', '--json', '-F', config, '--known-hosts', knownHosts, ...inner.slice(0, n).flatMap((_, i) => ['--host', `inner${i}`])]);

  const expectAllOk = (run: Run, n: number): void => {
    expect(run.stderr).toBe('');
    const report = JSON.parse(run.stdout) as { hosts: { ok: boolean; target: string }[] };
    expect(report.hosts.filter((h) => !h.ok)).toEqual([]);
    expect(report.hosts.map((h) => h.target)).toEqual(inner.slice(0, n).map((t) => `root@${t.host}`));
    expect(run.code).toBe(0);
  };

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    const lights = await startTargets(9, { kind: 'light' });
    [bastion, ...inner] = lights as [TestTarget, ...TestTarget[]];
    dir = mkdtempSync(join(tmpdir(), 'zanuri-bastion-shared-'));
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, lights.map((t) => t.knownHostsLine).join('\n') + '\n');
    config = join(dir, 'ssh_config');
    writeFileSync(config, [
      'Host bastion', `  HostName ${bastion.host}`, '  User root', `  IdentityFile ${bastion.privateKeyPath}`, '  IdentitiesOnly yes',
      ...inner.flatMap((t, i) => [`Host inner${i}`, `  HostName ${t.host}`, '  User root', '  ProxyJump bastion', `  IdentityFile ${t.privateKeyPath}`, '  IdentitiesOnly yes']),
      '',
    ].join('\n'));
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  /** Runs `zanuri check` for the first `n` inner hosts; returns the new TCP connections and sshd logins of the bastion and each host. */
  const checkCounting = async (n: number): Promise<{ bastion: [number, number]; hosts: [number, number][] }> => {
    const targets = [bastion, ...inner.slice(0, n)];
    const before = await Promise.all(targets.map(async (t) => [await opens(t), logins(t)] as const));
    expectAllOk(await check(n), n);
    const after = await Promise.all(targets.map(async (t, i) => {
      const [opened, logged] = before[i] as readonly [number, number];
      const newOpens = (await opens(t)) - opened;
      return [newOpens, (await loginsReach(t, logged + newOpens)) - logged] as [number, number];
    }));
    return { bastion: after[0] as [number, number], hosts: after.slice(1) };
  };

  it('checks six hosts behind one bastion with a single login to the bastion, and again in a second run', async () => {
    for (const round of [1, 2]) {
      const counts = await checkCounting(6);
      // [TCP connections, "Accepted publickey" lines]: one of each at the bastion, and at every host its own.
      expect({ round, ...counts }).toEqual({ round, bastion: [1, 1], hosts: Array.from({ length: 6 }, () => [1, 1]) });
      for (const t of inner.slice(0, 6)) {
        expect(readFileSync(t.logPath, 'utf8')).toMatch(new RegExp(`Accepted publickey for root from ${bastion.host.replaceAll('.', '\\.')} `));
      }
    }
  });

  it('shares the bastion between transports opened at once, keeps it for the others when one closes, and connects anew after the last', async () => {
    const before = await opens(bastion);
    const [a, b] = await Promise.all([SshTransport.connect('inner0', options()), SshTransport.connect('inner1', options())]);
    expect(await opens(bastion) - before).toBe(1);

    // A fresh login to the target (connectAs) is a new connection to it, through the same bastion.
    const innerBefore = await opens(inner[1] as TestTarget);
    const fresh = await b.connectAs('root');
    expect(await opens(inner[1] as TestTarget) - innerBefore).toBe(1);
    expect(await opens(bastion) - before).toBe(1);
    await fresh.close();

    await a.close();
    expect(b.lost).toBeNull();
    const still = await b.run({ argv: ['cat', '/etc/hostname'] });
    expect(still).toMatchObject({ ok: true, exitCode: 0, target: `root@${inner[1]?.host}` });
    await b.close();

    const c = await SshTransport.connect('inner2', options());
    try {
      expect(await opens(bastion) - before).toBe(2);
      expect(await c.run({ argv: ['true'] })).toMatchObject({ ok: true });
    } finally {
      await c.close();
    }
  });

  it('tries a bastion that failed again on the next open: a failure is not kept', async () => {
    const partial = join(dir, 'known_hosts_without_bastion');
    writeFileSync(partial, inner.map((t) => t.knownHostsLine).join('\n') + '\n');
    const opts: SshConnectOptions = { configFile: config, knownHostsFile: partial };
    const refused = await Promise.allSettled([SshTransport.connect('inner0', opts), SshTransport.connect('inner1', opts)]);
    for (const r of refused) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'HOST_KEY_UNKNOWN' });
      expect(String((r as PromiseRejectedResult).reason.message)).toContain(bastion.host);
    }
    appendFileSync(partial, `${bastion.knownHostsLine}\n`);
    const t = await SshTransport.connect('inner0', opts);
    try {
      expect(await t.run({ argv: ['true'] })).toMatchObject({ ok: true });
    } finally {
      await t.close();
    }
  });

  it('reports a lost bastion connection to every transport using it, and opens a new one for the next transport', async () => {
    const [a, b] = await Promise.all([SshTransport.connect('inner0', options()), SshTransport.connect('inner1', options())]);
    try {
      const runs = Promise.allSettled([a, b].map((t) => t.run({ argv: ['sleep', '600'] })));
      // Once both commands run on their hosts, cut the bastion's side of the connection.
      for (const t of [inner[0], inner[1]] as TestTarget[]) {
        await t.exec(['sh', '-c', "until pgrep -xf 'sleep 600' >/dev/null; do sleep 0.1; done"]);
      }
      const sockets = await bastion.exec(['ss', '-Htnp', 'state', 'established', '( sport = :22 )']);
      // Both transports ride on one connection to the bastion.
      expect(sockets.stdout.trim().split('\n')).toHaveLength(1);
      const pids = [...sockets.stdout.matchAll(/pid=(\d+)/g)].map((m) => m[1] as string);
      expect(pids.length).toBeGreaterThan(0);
      await bastion.exec(['kill', '-9', ...new Set(pids)]);

      for (const result of await runs) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason as ConnectionLostError;
        expect(reason).toBeInstanceOf(ConnectionLostError);
        expect(reason).toMatchObject({ code: 'CONNECTION_LOST', reason: 'closed' });
      }
      // Each hears it from the bastion's connection itself, before its own connection through it ends.
      expect(a.lost).toMatchObject({ reason: 'closed', target: `root@${bastion.host}` });
      expect(b.lost).toMatchObject({ reason: 'closed', target: `root@${bastion.host}` });

      // a and b still hold their share of the lost connection: a new open must not reuse it.
      const before = await opens(bastion);
      const c = await SshTransport.connect('inner2', options());
      try {
        expect(await opens(bastion) - before).toBe(1);
        expect(await c.run({ argv: ['true'] })).toMatchObject({ ok: true });
      } finally {
        await c.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  // Last: the rate limit it installs also counts the other tests' connections to the bastion.
  it.skipIf(!iptables && !process.env['CI'])('checks eight hosts behind a bastion whose SSH port is rate-limited as ufw limit does it (needs iptables)', async () => {
    const ipt = (...rule: string[]): Promise<unknown> => runOk(['ip', 'netns', 'exec', bastion.name, 'iptables', ...rule]);
    const match = ['-p', 'tcp', '--dport', '22', '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'recent', '--name', 'zanuri-limit'];
    await ipt('-A', 'INPUT', ...match, '--set');
    await ipt('-A', 'INPUT', ...match, '--update', '--seconds', '30', '--hitcount', '6', '-j', 'REJECT');
    try {
      expect(await checkCounting(8)).toEqual({ bastion: [1, 1], hosts: Array.from({ length: 8 }, () => [1, 1]) });

      // The limit is real: separate connections to the bastion are refused from the 6th on.
      let accepted = 0;
      let refusal: unknown = null;
      for (let i = 0; i < 10 && !refusal; i++) {
        try {
          await (await SshTransport.connect('bastion', options())).close();
          accepted += 1;
        } catch (error) {
          refusal = error;
        }
      }
      expect(refusal).toMatchObject({ code: 'UNREACHABLE' });
      expect(String((refusal as Error).message)).toContain('ECONNREFUSED');
      expect(accepted).toBeLessThanOrEqual(5);
    } finally {
      await ipt('-F', 'INPUT');
    }
  });
});
