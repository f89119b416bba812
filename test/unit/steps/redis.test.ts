import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { directoryFact, fileFact, serviceFact, type FactRequest } from '../../../src/facts/state.js';
import { aclPath, configPath, maxmemoryOf, memTotalFact, redis, secretsFact } from '../../../src/steps/redis.js';
import { redisSentinel, sentinelFact } from '../../../src/steps/redis-sentinel.js';
import { sentinelConfScript } from '../../../src/steps/redis-host.js';
import { templates } from './facts-of.js';
import { planOf, present } from './facts-of.js';

const secret = 'f'.repeat(64);
const twoGb = 2 * 1024 * 1024; // MemTotal in kB of seed 004's Redis Cache host

function redisEntries(p: ReturnType<typeof redis.parseParams>, state: string, files: Record<string, string> = {}): Array<[FactRequest<unknown>, string]> {
  const dirs = ['/etc/zanuri', '/etc/zanuri/redis', '/etc/redis/zanuri', '/etc/systemd/system/redis-server.service.d'];
  const paths = [configPath, '/etc/systemd/system/redis-server.service.d/zanuri.conf', '/etc/zanuri/redis/cluster.secret'];
  return [
    [memTotalFact, String(twoGb)], [secretsFact(p), state], [serviceFact('redis-server.service'), 'enabled\nactive'],
    ...dirs.map((d): [FactRequest<unknown>, string] => [directoryFact(d), 'absent']),
    ...paths.map((f): [FactRequest<unknown>, string] => [fileFact(f), files[f] ?? 'absent']),
  ];
}

describe('redis parameters', () => {
  it('takes a size or a share of the host\'s memory; 75% of seed 004\'s 2 GB host is 1536mb', () => {
    expect(maxmemoryOf('75%', twoGb)).toBe('1536mb');
    expect(maxmemoryOf('2gb', twoGb)).toBe('2gb');
    expect(() => redis.parseParams({ maxmemory: '150%' })).toThrow(/maxmemory must be/);
    expect(() => redis.parseParams({ maxmemory: '1; rm' })).toThrow(/maxmemory must be/);
  });

  it('refuses ACL rules that carry a password or switch a user off, and zanuri\'s own user names', () => {
    for (const rules of ['>secret', '~* >x', 'nopass', 'on', '#abc', '+@all\n-@x', '~*;reboot']) {
      expect(() => redis.parseParams({ users: [{ name: 'app', rules }] }), rules).toThrow(/rules must be/);
    }
    for (const name of ['default', 'admin', 'replica', 'sentinel']) expect(() => redis.parseParams({ users: [{ name, rules: '~*' }] })).toThrow(/zanuri's own/);
  });

  it('needs the cluster secret for a replica, and never shows the secret in an error', () => {
    expect(() => redis.parseParams({ replicaOf: { host: '10.0.0.1' } })).toThrow(/replicaOf needs clusterSecret/);
    const bad = 'short secret with spaces';
    try {
      redis.parseParams({ clusterSecret: [bad] });
      expect.unreachable();
    } catch (error) {
      expect(String((error as Error).message)).toMatch(/content is not shown/);
      expect(JSON.stringify(error)).not.toContain(bad);
      expect(String((error as Error).message)).not.toContain(bad);
    }
    const p = redis.parseParams({ clusterSecret: [secret] });
    expect(JSON.stringify(p)).not.toContain(secret);
  });
});

describe('redis plan', () => {
  const standalone = redis.parseParams({ bind: ['10.0.0.5'], maxmemory: '75%', maxmemoryPolicy: 'allkeys-lru', persistence: 'rdb' });

  it('plans a fresh host: passwords generated on the host, zanuri\'s own redis.conf bound to loopback and the internal address, the drop-in and a restart', () => {
    const plan = planOf(redis, redisEntries(standalone, 'pw admin due\npw app due\nacl differs\nauth none'), standalone);
    const put = plan.actions.find((a) => a.kind === 'put' && a.path === configPath);
    expect(put?.kind === 'put' && String(put.content)).toContain('bind 127.0.0.1 -::1 10.0.0.5\nprotected-mode yes\n');
    expect(put?.kind === 'put' && String(put.content)).toContain('maxmemory 1536mb\nmaxmemory-policy allkeys-lru\n');
    expect(put?.kind === 'put' && String(put.content)).toContain('save 3600 1 300 100 60 10000\n');
    expect(put?.kind === 'put' && String(put.content)).toContain('appendonly no\n');
    expect(put?.kind === 'put' && String(put.content)).not.toContain('replicaof');
    const secrets = plan.actions.find((a) => a.kind === 'run' && a.cmd.argv[3] === 'zanuri-redis');
    expect(secrets?.why).toMatch(/admin, app have no password yet \(generated on the host/);
    expect(secrets?.kind === 'run' && secrets.cmd.argv.slice(4, 9)).toEqual(['apply', '/etc/zanuri/redis', aclPath, '-', '-']);
    expect(plan.actions.some((a) => a.kind === 'run' && a.cmd.argv.join(' ') === 'systemctl daemon-reload')).toBe(true);
  });

  it('writes the cluster secret as a Secret and derives passwords from it on a replica', () => {
    const p = redis.parseParams({ replicaOf: { host: '10.0.0.1', port: 6379 }, clusterSecret: [secret] });
    const plan = planOf(redis, redisEntries(p, 'pw admin due\npw app due\npw replica due\npw sentinel due\nacl differs\nauth differs'), p);
    const secretPut = plan.actions.find((a) => a.kind === 'put' && a.path === '/etc/zanuri/redis/cluster.secret');
    expect(secretPut?.kind === 'put' && secretPut.mode).toBe(0o600);
    expect(String(secretPut?.kind === 'put' && secretPut.content)).toBe('[secret]');
    expect(JSON.stringify(plan)).not.toContain(secret);
    const conf = plan.actions.find((a) => a.kind === 'put' && a.path === configPath);
    expect(String(conf?.kind === 'put' && conf.content)).toContain('replicaof 10.0.0.1 6379\ninclude /etc/redis/zanuri/replication.conf\n');
    expect(plan.actions.find((a) => a.kind === 'run' && a.cmd.argv[3] === 'zanuri-redis')?.why).toMatch(/derived on the host from the cluster secret/);
  });

  it('is converged when the files are as wanted and the host says the passwords and ACL file are', () => {
    const first = planOf(redis, redisEntries(standalone, 'pw admin ok\npw app ok\nacl same\nauth none'), standalone);
    const conf = first.actions.find((a) => a.kind === 'put' && a.path === configPath);
    const dropIn = first.actions.find((a) => a.kind === 'put' && a.path.endsWith('zanuri.conf') && a.path.includes('systemd'));
    const files = { [configPath]: present(String(conf?.kind === 'put' && conf.content), '640', 'root', 'redis'), '/etc/systemd/system/redis-server.service.d/zanuri.conf': present(String(dropIn?.kind === 'put' && dropIn.content)) };
    const entries = redisEntries(standalone, 'pw admin ok\npw app ok\nacl same\nauth none', files).map(([f, out]): [FactRequest<unknown>, string] => {
      if (f.key === 'directory:/etc/zanuri') return [f, 'dir 755 root root'];
      if (f.key === 'directory:/etc/zanuri/redis') return [f, 'dir 700 root root'];
      if (f.key === 'directory:/etc/redis/zanuri') return [f, 'dir 2750 root redis'];
      if (f.key.startsWith('directory:')) return [f, 'dir 755 root root'];
      return [f, out];
    });
    const plan = planOf(redis, entries, standalone);
    expect(plan.actions).toEqual([]);
    expect('noop' in plan && plan.noop).toMatch(/maxmemory 1536mb allkeys-lru, persistence rdb/);
  });

  it('serves its port as internal', () => {
    expect(redis.serves?.(standalone)).toEqual([{ port: 6379, protocol: 'tcp', access: 'internal', why: 'Redis (ACL users only)' }]);
  });
});

describe('redis-sentinel', () => {
  const p = redisSentinel.parseParams({ primary: { host: '10.0.0.1' }, bind: ['10.0.0.2'], clusterSecret: [secret], downAfterMs: 3000 });

  it('needs the cluster secret and the primary', () => {
    expect(() => redisSentinel.parseParams({ primary: { host: '10.0.0.1' } })).toThrow(/clusterSecret is required/);
    expect(() => redisSentinel.parseParams({ clusterSecret: [secret] })).toThrow(/primary is required/);
  });

  /** Runs the host script's check mode on a sentinel.conf as Sentinel rewrote it (defaults dropped, values quoted, state appended). */
  function check(conf: string | null): string {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-sentinel-'));
    try {
      const pw = createHash('sha256').update(`${secret}\nsentinel`).digest('hex');
      writeFileSync(join(dir, 'pw'), pw);
      if (conf !== null) writeFileSync(join(dir, 'sentinel.conf'), conf.replaceAll('PW', pw));
      const seed = String(templates.render('redis/sentinel.conf', { port: 26379, bind: '127.0.0.1 10.0.0.2', name: 'zanuri', primaryHost: '10.0.0.1', primaryPort: 6379, quorum: 2, downAfter: 3000, failoverTimeout: 180000, parallelSyncs: 1 }).text);
      const r = spawnSync('dash', ['-c', sentinelConfScript, 'x', 'check', join(dir, 'sentinel.conf'), seed, 'zanuri', join(dir, 'pw')], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      return r.stdout.trim();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const rewritten = `port 26379
bind 127.0.0.1 10.0.0.2
protected-mode yes
daemonize no
dir "/var/lib/redis"
requirepass "PW"
sentinel sentinel-pass PW
sentinel monitor zanuri 10.0.0.9 6379 2
sentinel auth-user zanuri sentinel
sentinel auth-pass zanuri PW
sentinel down-after-milliseconds zanuri 3000
# Generated by CONFIG REWRITE
sentinel myid d6018de2c6cc31457a534042a0600a6773273a1a
sentinel known-replica zanuri 10.0.0.1 6379
`;

  it('reads a file Sentinel rewrote after a failover (new primary, defaults left out, quotes) as converged', () => {
    expect(check(rewritten)).toBe('sentinel same');
  });

  it('names the settings that differ, never a password', () => {
    const out = check(rewritten.replace('zanuri 3000', 'zanuri 30000').replace('auth-pass zanuri PW', 'auth-pass zanuri wrong'));
    expect(out).toBe('sentinel differs auth-pass down-after');
    expect(check(null)).toBe('sentinel absent');
  });

  it('plans the seed with the password filled in on the host, and serves 26379 as internal', () => {
    const seed = String(templates.render('redis/sentinel.conf', { port: 26379, bind: '127.0.0.1 10.0.0.2', name: 'zanuri', primaryHost: '10.0.0.1', primaryPort: 6379, quorum: 2, downAfter: 3000, failoverTimeout: 180000, parallelSyncs: 1 }).text);
    expect(seed).toContain('requirepass @ZANURI_PASSWORD@');
    const plan = planOf(redisSentinel, [
      [sentinelFact(p, seed), 'pw due\nsentinel differs password'], [serviceFact('redis-sentinel.service'), 'enabled\nactive'],
      [directoryFact('/etc/zanuri'), 'dir 755 root root'], [directoryFact('/etc/zanuri/redis-sentinel'), 'absent'], [fileFact('/etc/zanuri/redis-sentinel/cluster.secret'), 'absent'],
    ], p);
    expect(plan.actions.map((a) => a.why)).toEqual([
      '/etc/zanuri/redis-sentinel/ does not exist', 'the cluster secret is not on the host yet',
      'the sentinel password is not derived from the cluster secret yet (on the host; it never leaves it)',
      '/etc/redis/sentinel.conf differs in password (the primary Sentinel follows now is kept)',
    ]);
    expect(JSON.stringify(plan)).not.toContain(secret);
    expect(redisSentinel.serves?.(p)[0]).toMatchObject({ port: 26379, access: 'internal' });
  });
});
