/**
 * redis and redis-sentinel on three real systemd targets (needs root): a primary and a replica, each
 * with a sentinel, and a third sentinel alone. Four cells on each; then Redis is used (redis-cli as
 * the ACL users, with their passwords from the 0600 files, never argv), replication carries a key,
 * the default user is refused, the cluster secret and the passwords appear in no report, and
 * stopping the primary makes Sentinel promote the replica within a bounded wait, after which a
 * zanuri run changes nothing (it never undoes Sentinel's failover).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { fourCells, zanuriProvision, type ProvisionRun } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = 'test/integration/playbooks/redis.yaml';

describe.skipIf(!can.ok && !process.env['CI'])('provision: Redis with Sentinel on three real targets (needs root)', () => {
  let primary: TestTarget;
  let replica: TestTarget;
  let third: TestTarget;
  let dir: string;
  let secretFile: string;
  let secret: string;
  const runs: ProvisionRun[] = [];

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    dir = mkdtempSync(join(tmpdir(), 'zanuri-redis-'));
    secret = randomBytes(32).toString('hex');
    secretFile = join(dir, 'cluster.secret');
    writeFileSync(secretFile, `${secret}\n`);
    chmodSync(secretFile, 0o600);
    await ensureAptProxy();
    [primary, replica, third] = (await startTargets(3)) as [TestTarget, TestTarget, TestTarget];
  }, 600_000);

  afterAll(async () => {
    await stopAllTargets();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const sentinelArgs = (t: TestTarget): string[] => [
    '--set', `redis-sentinel.primary=${JSON.stringify({ host: primary.host, port: 6379 })}`, '--set', `redis-sentinel.bind=${JSON.stringify([t.host])}`,
    '--set', `redis-sentinel.clusterSecret=@${secretFile}`,
  ];
  const nodeArgs = (t: TestTarget, replicaOf: TestTarget | null): string[] => [
    '--playbook', playbook, '--set', `redis.bind=${JSON.stringify([t.host])}`, '--set', `redis.clusterSecret=@${secretFile}`,
    ...(replicaOf ? ['--set', `redis.replicaOf=${JSON.stringify({ host: replicaOf.host, port: 6379 })}`] : []),
    ...sentinelArgs(t),
  ];
  /** redis-cli inside the target as USER, the password from its 0600 file through REDISCLI_AUTH. */
  const cli = (t: TestTarget, user: string, ...command: string[]) => t.exec(['sh', '-c',
    'f=$1 u=$2 p=$3; shift 3; REDISCLI_AUTH=$(cat "$f"); export REDISCLI_AUTH; exec timeout 20 redis-cli --no-auth-warning --user "$u" -h 127.0.0.1 -p "$p" "$@"',
    'cli', user === 'sentinel-client' ? '/etc/zanuri/redis-sentinel/sentinel.password' : `/etc/zanuri/redis/${user}.password`,
    user === 'sentinel-client' ? 'default' : user, user === 'sentinel-client' ? '26379' : '6379', ...command]);
  const masterSeenBy = async (t: TestTarget): Promise<string> => (await cli(t, 'sentinel-client', 'SENTINEL', 'get-master-addr-by-name', 'zanuri')).stdout.trim().split('\n')[0] ?? '';
  async function until(what: string, seconds: number, test: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      if (await test()) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(`${what}: not within ${seconds} s`);
  }

  it('converges a primary, a replica and a third sentinel in four cells each; the ACL users work and replication carries a key', async () => {
    runs.push(...await fourCells(primary, nodeArgs(primary, null), ['redis', 'redis-sentinel']));
    runs.push(...await fourCells(replica, nodeArgs(replica, primary), ['redis', 'redis-sentinel']));
    runs.push(...await fourCells(third, ['--playbook', playbook, '--only', 'redis-sentinel', ...sentinelArgs(third)], ['redis-sentinel']));

    // The application user writes on the primary; the replica, logged in with the derived replica password, has it.
    const set = await cli(primary, 'app', 'SET', 'zanuri:test', 'hello');
    expect(set.stdout.trim(), set.stderr).toBe('OK');
    await until('the key reaches the replica', 30, async () => (await cli(replica, 'app', 'GET', 'zanuri:test')).stdout.trim() === 'hello');
    const role = await cli(replica, 'admin', 'ROLE');
    expect(role.stdout.split('\n')[0]).toBe('slave');
    expect(role.stdout).toContain(primary.host);
    // The application user has the same password on both nodes (derived from the one secret), and may not run dangerous commands.
    expect((await primary.exec(['cat', '/etc/zanuri/redis/app.password'])).stdout).toBe((await replica.exec(['cat', '/etc/zanuri/redis/app.password'])).stdout);
    expect((await cli(primary, 'app', 'CONFIG', 'GET', 'maxmemory')).stdout).toMatch(/NOPERM/);
    const readOnly = await cli(replica, 'app', 'SET', 'x', 'y');
    expect(readOnly.stdout + readOnly.stderr).toMatch(/READONLY/);

    // Settings from the playbook are in effect.
    const config = await cli(primary, 'admin', 'CONFIG', 'GET', 'maxmemory*');
    expect(config.stdout).toMatch(/^maxmemory\n268435456$/m);
    expect(config.stdout).toMatch(/^maxmemory-policy\nnoeviction$/m);
    expect((await cli(primary, 'admin', 'CONFIG', 'GET', 'appendonly')).stdout).toMatch(/appendonly\nyes/);
    expect((await cli(primary, 'admin', 'CONFIG', 'GET', 'protected-mode')).stdout).toMatch(/protected-mode\nyes/);

    // Without a password, and with a wrong one, Redis refuses.
    const anonymous = await primary.exec(['timeout', '20', 'redis-cli', '-h', primary.host, 'PING']);
    expect(anonymous.stdout + anonymous.stderr).toMatch(/NOAUTH/);
    const wrong = await primary.exec(['sh', '-c', 'REDISCLI_AUTH=wrong redis-cli --no-auth-warning --user app -h 127.0.0.1 PING']);
    expect(wrong.stdout + wrong.stderr).toMatch(/WRONGPASS/);

    // 6379 listens on loopback and the node's own address only.
    const ss = await primary.exec(['ss', '-Hltn', 'sport = :6379']);
    const addresses = ss.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)[3]);
    expect(addresses.length, ss.stdout).toBeGreaterThan(0);
    for (const address of addresses) expect(address, ss.stdout).toMatch(new RegExp(`^(?:127\\.0\\.0\\.1|\\[::1\\]|${primary.host.replaceAll('.', '\\.')}):6379$`));

    // Secrets: 0600 root files; in no report; the ACL file holds hashes only.
    for (const t of [primary, replica]) {
      for (const f of ['cluster.secret', 'app.password', 'admin.password', 'replica.password', 'sentinel.password']) {
        expect((await t.exec(['stat', '-c', '%a %U', `/etc/zanuri/redis/${f}`])).stdout.trim(), f).toBe('600 root');
      }
    }
    const passwords = await Promise.all(['app', 'admin', 'replica', 'sentinel'].map(async (u) => (await primary.exec(['cat', `/etc/zanuri/redis/${u}.password`])).stdout));
    for (const pw of passwords) expect(pw).toMatch(/^[0-9a-f]{64}$/);
    const acl = (await primary.exec(['cat', '/etc/redis/zanuri/users.acl'])).stdout;
    expect(acl).toMatch(/^user app on #[0-9a-f]{64} ~\* &\* \+@all -@dangerous$/m);
    for (const value of [secret, ...passwords]) {
      expect(acl.includes(value)).toBe(false);
      for (const run of runs) expect(run.stdout.includes(value) || run.stderr.includes(value), 'a secret in a report').toBe(false);
    }
  }, 2_400_000);

  it('three sentinels agree, and stopping the primary makes them promote the replica; zanuri then changes nothing', async () => {
    await until('three sentinels see each other', 60, async () => /OK 3 usable Sentinels/.test((await cli(third, 'sentinel-client', 'SENTINEL', 'ckquorum', 'zanuri')).stdout));
    expect(await masterSeenBy(third)).toBe(primary.host);

    const stop = await primary.exec(['systemctl', 'stop', 'redis-server.service']);
    expect(stop.exitCode, stop.stderr).toBe(0);
    await until('Sentinel promotes the replica', 90, async () => (await masterSeenBy(third)) === replica.host);
    await until('the replica reports itself primary', 30, async () => (await cli(replica, 'admin', 'ROLE')).stdout.split('\n')[0] === 'master');
    expect((await cli(replica, 'app', 'GET', 'zanuri:test')).stdout.trim(), 'the data survived').toBe('hello');
    expect((await cli(replica, 'app', 'SET', 'after', 'failover')).stdout.trim()).toBe('OK');

    // The new primary's configuration file still names the old primary: zanuri's file is root's, Sentinel changed the running server only; zanuri keeps that.
    for (const [t, args] of [[replica, nodeArgs(replica, primary)], [third, ['--playbook', playbook, '--only', 'redis-sentinel', ...sentinelArgs(third)]]] as const) {
      const again = await zanuriProvision(t, [...args, '--dry-run']);
      expect(again.host.steps.filter((s) => s.status !== 'unchanged'), 'a run after the failover finds nothing to do').toEqual([]);
    }
    expect((await cli(replica, 'admin', 'ROLE')).stdout.split('\n')[0]).toBe('master');

    // The old primary comes back as a replica of the new one.
    expect((await primary.exec(['systemctl', 'start', 'redis-server.service'])).exitCode).toBe(0);
    await until('the old primary follows the new one', 60, async () => {
      const r = (await cli(primary, 'admin', 'ROLE')).stdout.split('\n');
      return r[0] === 'slave' && r[1] === replica.host;
    });
    await until('the key written after the failover reaches it', 30, async () => (await cli(primary, 'app', 'GET', 'after')).stdout.trim() === 'failover');
  }, 900_000);

  it('converges a standalone cache in four cells with passwords generated on the host, kept across runs, evicting by LRU at 75% of RAM', async () => {
    const args = ['--playbook', playbook, '--only', 'redis', '--set', 'redis.maxmemory="75%"', '--set', 'redis.maxmemoryPolicy=allkeys-lru', '--set', 'redis.persistence=rdb'];
    const cells = await fourCells(third, args, ['redis']);
    const pw = (await third.exec(['cat', '/etc/zanuri/redis/app.password'])).stdout;
    expect(pw).toMatch(/^[A-Za-z0-9]{32}$/);
    for (const run of cells) expect(run.stdout.includes(pw) || run.stderr.includes(pw)).toBe(false);
    expect((await third.exec(['test', '-e', '/etc/zanuri/redis/replica.password'])).exitCode, 'no replication users without a cluster secret').not.toBe(0);
    const memTotalKb = Number((await third.exec(['awk', '/^MemTotal:/ { print $2 }', '/proc/meminfo'])).stdout.trim());
    const config = await cli(third, 'admin', 'CONFIG', 'GET', 'maxmemory*');
    expect(config.stdout).toContain(`maxmemory\n${Math.floor((memTotalKb * 75) / 100 / 1024) * 1024 * 1024}\n`);
    expect(config.stdout).toMatch(/maxmemory-policy\nallkeys-lru/);
    expect((await cli(third, 'admin', 'CONFIG', 'GET', 'appendonly')).stdout).toMatch(/appendonly\nno/);
    expect((await cli(third, 'app', 'SET', 'k', 'v')).stdout.trim()).toBe('OK');
    expect((await third.exec(['cat', '/etc/zanuri/redis/app.password'])).stdout, 'the password is kept').toBe(pw);
  }, 900_000);
});
