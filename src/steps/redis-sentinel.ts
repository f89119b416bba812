import { CommandError, ConfigError } from '../core/errors.js';
import { quoteArg } from '../core/quote.js';
import type { Secret } from '../core/secret.js';
import type { FactRequest } from '../facts/state.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import type { Resource } from '../resources/types.js';
import { clusterSecret, clusterSecretSchema, derivePasswordScript, redisCliScript, sentinelConfScript } from './redis-host.js';
import { params, port, Type } from './schema.js';
import { defineStep } from './types.js';

/**
 * Redis Sentinel (seed 002's Redis server: "Redis 7.x, Redis Sentinel"): a sentinel on each Redis
 * node and at least one more host, so that a quorum survives the loss of the primary's host.
 *
 * A separate step from redis because the third sentinel runs on a host without a Redis server, and
 * because the two files are owned differently: zanuri owns redis.conf outright, while Sentinel
 * must own sentinel.conf (it refuses to start without writing it, and records there the replicas,
 * the other sentinels and, after a failover, the new primary). So zanuri seeds sentinel.conf from a
 * template and compares only the settings it owns (read back with Sentinel's defaults where Sentinel
 * leaves a default out); when one differs it writes the seed again, keeping the primary Sentinel
 * follows now. The monitored primary's address is never compared: after a failover it is Sentinel's.
 *
 * Sentinel logs in to the Redis nodes as their "sentinel" ACL user, and clients and the other
 * sentinels log in to it, with one password derived on the host from the cluster secret (the same
 * file the redis step takes), so every host agrees without the password travelling.
 */
const id = 'redis-sentinel';
const unit = 'redis-sentinel.service';
export const confPath = '/etc/redis/sentinel.conf';
export const secretsDir = '/etc/zanuri/redis-sentinel';
export const clusterSecretPath = `${secretsDir}/cluster.secret`;
export const passwordPath = `${secretsDir}/sentinel.password`;

const ipv4 = Type.String({ pattern: '^(?:\\d{1,3}\\.){3}\\d{1,3}$', what: 'an IPv4 address' });

const schema = params({
  name: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$', default: 'zanuri', what: 'a name (letters, digits, _ and -)', description: 'The name Sentinel knows the replicated set by (clients ask SENTINEL get-master-addr-by-name NAME).' }),
  primary: Type.Union([Type.Null(), Type.Object({ host: ipv4, port: port({ default: 6379 }) }, { additionalProperties: false })], {
    default: null, description: 'The primary to monitor at first ({host, port}). Required. After a failover Sentinel follows the new primary and zanuri keeps it.',
  }),
  quorum: Type.Integer({ minimum: 1, maximum: 15, default: 2, description: 'Sentinels that must agree the primary is down before a failover (2 of 3).' }),
  downAfterMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 30000, description: 'down-after-milliseconds: how long the primary may not answer before a sentinel thinks it down.' }),
  failoverTimeoutMs: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 180000, description: 'failover-timeout in milliseconds.' }),
  parallelSyncs: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'parallel-syncs: replicas resynchronised with a new primary at once.' }),
  bind: Type.Array(ipv4, { default: [], description: 'Internal addresses of this host to listen on besides 127.0.0.1 (the other sentinels must reach it there).' }),
  port: port({ default: 26379, description: 'The port Sentinel listens on.' }),
  clusterSecret: clusterSecretSchema('The replicated set\'s shared secret (the same file as redis.clusterSecret): --set redis-sentinel.clusterSecret=@FILE. Required.'),
});

interface SentinelParams {
  name: string; primary: { host: string; port: number }; quorum: number; downAfterMs: number; failoverTimeoutMs: number; parallelSyncs: number;
  bind: string[]; port: number; clusterSecret: Secret;
}

export interface SentinelState { password: 'ok' | 'due'; conf: 'same' | 'absent' | string }

const seedOf = (p: SentinelParams, templates: { render: (n: string, v: Record<string, string | number>) => { text: unknown } }): string => String(templates.render('redis/sentinel.conf', {
  port: p.port, bind: ['127.0.0.1', ...p.bind].join(' '), name: p.name, primaryHost: p.primary.host, primaryPort: p.primary.port,
  quorum: p.quorum, downAfter: p.downAfterMs, failoverTimeout: p.failoverTimeoutMs, parallelSyncs: p.parallelSyncs,
}).text);

/** The derived password file and sentinel.conf's owned settings, compared on the host; never a password. */
export function sentinelFact(p: SentinelParams, seed: string): FactRequest<SentinelState> {
  const derive = ['sh', '-c', derivePasswordScript, 'zanuri-derive', clusterSecretPath, 'sentinel', passwordPath, 'check'];
  const conf = ['sh', '-c', sentinelConfScript, 'zanuri-sentinel', 'check', confPath, seed, p.name, passwordPath];
  return {
    key: `redis-sentinel:${p.name}:${seed}`,
    script: `{ ${derive.map(quoteArg).join(' ')} || echo 'pw due'; } 2>/dev/null; { ${conf.map(quoteArg).join(' ')} || echo 'sentinel differs unreadable'; } 2>/dev/null`,
    parse(output) {
      const state: SentinelState = { password: 'due', conf: 'absent' };
      for (const line of output.split('\n')) {
        if (line === 'pw ok') state.password = 'ok';
        else if (line === 'sentinel same') state.conf = 'same';
        else if (line.startsWith('sentinel differs')) state.conf = line.slice('sentinel differs'.length).trim() || 'differs';
      }
      return state;
    },
  };
}

/** A command whose need is judged from a fact this resource declares itself (the fact needs the rendered seed, known only in resources()). */
function onFact<T>(name: string, fact: FactRequest<T>, needed: (state: T) => string | null, cmd: Parameters<typeof command>[2], options: Parameters<typeof command>[3]): Resource {
  return { id: `command:${name}`, describe: name, facts: () => [fact], plan: (facts) => command(name, needed(facts.get(fact)), cmd, options).plan(facts) };
}

export const redisSentinel = defineStep({
  id,
  title: 'Redis Sentinel',
  after: ['redis'],
  params: schema,

  check(raw): SentinelParams {
    const secret = clusterSecret(id, raw.clusterSecret);
    if (!secret) throw new ConfigError(`${id}: clusterSecret is required: Sentinel logs in to the Redis nodes and to the other sentinels with a password derived from it`, { hint: `--set ${id}.clusterSecret=@FILE, the same file as redis.clusterSecret` });
    if (!raw.primary) throw new ConfigError(`${id}: primary is required ({host, port} of the Redis primary to monitor)`);
    if (raw.bind.some((a) => a === '127.0.0.1' || a === '0.0.0.0')) throw new ConfigError(`${id}: bind lists this host's internal addresses; loopback is always bound and a wildcard is refused`);
    return { ...raw, primary: raw.primary, clusterSecret: secret };
  },

  packages: () => ['redis-sentinel', 'redis-tools'],

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'Redis Sentinel (the other sentinels and clients that ask for the primary)' }],

  resources(facts, p, { templates }) {
    const seed = seedOf(p, templates);
    const fact = sentinelFact(p, seed);
    const restart = [{ unit, op: 'restart' as const }];
    const confWhy = (s: SentinelState): string | null => (s.conf === 'same' ? null : s.conf === 'absent' ? `${confPath} does not exist yet` : `${confPath} differs in ${s.conf.trim().split(/\s+/).join(', ')} (the primary Sentinel follows now is kept)`);
    return [
      directory('/etc/zanuri', { mode: 0o755 }),
      directory(secretsDir, { mode: 0o700 }),
      file(clusterSecretPath, templates.render('redis/cluster.secret', { secret: p.clusterSecret }), {
        mode: 0o600, whyMissing: 'the cluster secret is not on the host yet', whyDiffers: `${clusterSecretPath} is not the cluster secret given`,
      }),
      onFact('redis-sentinel-password', fact, (s) => (s.password === 'ok' ? null : 'the sentinel password is not derived from the cluster secret yet (on the host; it never leaves it)'),
        { argv: ['sh', '-c', derivePasswordScript, 'zanuri-derive', clusterSecretPath, 'sentinel', passwordPath] },
        { display: `derive the sentinel password from ${clusterSecretPath} into ${passwordPath} (0600 root)`, notify: restart }),
      onFact('redis-sentinel-conf', fact, confWhy, { argv: ['sh', '-c', sentinelConfScript, 'zanuri-sentinel', 'apply', confPath, seed, p.name, passwordPath] }, {
        display: `seed ${confPath} for ${p.name} (primary ${p.primary.host}:${p.primary.port}, quorum ${p.quorum}; passwords filled in on the host)`, notify: restart,
      }),
      service(unit, { enabled: true, running: true }),
    ];
  },

  converged: (p) => `Sentinel on port ${p.port} watches ${p.name} (first primary ${p.primary.host}:${p.primary.port}, quorum ${p.quorum}, down after ${p.downAfterMs} ms), logged in with the derived sentinel password`,

  /** Sentinel answers, with the password, where the primary is. */
  async verify(ctx, p) {
    const ask = () => ctx.run({ argv: ['sh', '-c', redisCliScript, 'zanuri-redis-cli', passwordPath, 'default', String(p.port), 'SENTINEL', 'get-master-addr-by-name', p.name] });
    const deadline = Date.now() + 20_000;
    let answer = await ask();
    while (!/^\S+\n\d+$/.test(answer.stdout.trim()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      answer = await ask();
    }
    if (!/^\S+\n\d+$/.test(answer.stdout.trim())) throw new CommandError(answer, `redis-cli -p ${p.port} SENTINEL get-master-addr-by-name ${p.name}`);
  },
});
