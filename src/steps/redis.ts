import { CommandError, ConfigError } from '../core/errors.js';
import { quoteArg } from '../core/quote.js';
import type { FactRequest } from '../facts/state.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { clusterSecret, clusterSecretSchema, redisCliScript, redisSecretsScript } from './redis-host.js';
import { params, port, Type } from './schema.js';
import { defineStep } from './types.js';

/**
 * Redis 7 as Debian 12 ships it (7.0), run from zanuri's own configuration: bound to loopback and
 * the listed internal addresses, protected mode, the default user off and ACL users whose passwords
 * live in 0600 root files on the host (the ACL file holds only their SHA-256 hashes), maxmemory and
 * the eviction policy from the playbook, RDB and/or AOF persistence.
 *
 * redis-server reads /etc/redis/zanuri/redis.conf through a systemd drop-in: Debian's redis.conf is
 * left to dpkg (whose statoverride makes it writable by redis), and zanuri's file is root's, so a
 * CONFIG REWRITE (Sentinel's, on a failover) changes roles in the running servers only and a
 * second zanuri run finds nothing to undo. Who is primary after a failover is Sentinel's business.
 *
 * Passwords: see redis-host.ts (random on a standalone host; derived on the host from the operator's
 * cluster secret on every host of a replicated set, so they agree without travelling).
 */
const id = 'redis';
const unit = 'redis-server.service';
export const configDir = '/etc/redis/zanuri';
export const configPath = `${configDir}/redis.conf`;
export const aclPath = `${configDir}/users.acl`;
export const authPath = `${configDir}/replication.conf`;
export const secretsDir = '/etc/zanuri/redis';
export const clusterSecretPath = `${secretsDir}/cluster.secret`;
export const passwordPath = (user: string): string => `${secretsDir}/${user}.password`;
const dropInDir = '/etc/systemd/system/redis-server.service.d';
const dropInPath = `${dropInDir}/zanuri.conf`;

/** The replication and Sentinel users' rights (Redis's documentation: "Redis replication" and "Sentinel: ACL"). */
const builtinUsers = {
  admin: '~* &* +@all',
  replica: '+psync +replconf +ping',
  sentinel: 'allchannels +multi +slaveof +replicaof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill',
};
const reservedUsers = new Set(['default', ...Object.keys(builtinUsers)]);

/** ACL rules without passwords: key and channel patterns, command (category) grants; never >, <, #, nopass or on/off. */
const aclRule = '(?:[~%][A-Za-z0-9*?:_.{}\\[\\]~RW-]*|&[A-Za-z0-9*?:_.{}\\[\\]-]*|[+-]@?[a-z][a-z|_-]*|allkeys|allchannels|allcommands|nocommands|resetkeys|resetchannels)';
const sizePattern = '^(?:[1-9]\\d{0,15}(?:[kmg]b?)?|[1-9]\\d?%)$';

const schema = params({
  bind: Type.Array(Type.String({ pattern: '^(?:(?:\\d{1,3}\\.){3}\\d{1,3}|[0-9a-fA-F:]+)$', what: 'an IPv4 or IPv6 address' }), {
    default: [], description: 'Internal addresses of this host to listen on besides 127.0.0.1 and ::1 (the port is internal: the firewall opens it from ufw.internalFrom only).',
  }),
  port: port({ default: 6379, description: 'The port redis listens on.' }),
  maxmemory: Type.String({
    pattern: sizePattern, default: '75%', what: 'a size like 1536mb or 2gb, or a percentage of the host\'s memory like 75%',
    description: 'maxmemory: a size (1536mb, 2gb) or a share of the host\'s RAM (75%, worked out from MemTotal when planning), leaving room for the OS and the fork of an RDB save or AOF rewrite.',
  }),
  maxmemoryPolicy: Type.Union(['noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl'].map((v) => Type.Literal(v)), {
    default: 'noeviction', description: 'maxmemory-policy: noeviction (writes fail when full: for data) or an eviction policy such as allkeys-lru (for a cache, seed 004\'s "memory and caching").',
  }),
  persistence: Type.Union([Type.Literal('rdb'), Type.Literal('aof'), Type.Literal('both'), Type.Literal('none')], {
    default: 'both', description: 'rdb: snapshots (save 3600 1 300 100 60 10000); aof: append-only file, fsync every second; both; none (a pure cache).',
  }),
  users: Type.Array(Type.Object({
    name: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,31}$', what: 'a user name' }),
    rules: Type.String({ pattern: `^${aclRule}(?: ${aclRule})*$`, maxLength: 1000, what: 'ACL rules like "~* &* +@all -@dangerous" (no passwords)' }),
  }, { additionalProperties: false }), {
    default: [{ name: 'app', rules: '~* &* +@all -@dangerous' }],
    description: 'Application users and their ACL rules (keys, channels, commands); each gets a password in /etc/zanuri/redis/NAME.password (0600 root). An admin user (all rights) is always there; with a cluster secret, replica and sentinel users too.',
  }),
  replicaOf: Type.Union([Type.Null(), Type.Object({
    host: Type.String({ pattern: '^(?:\\d{1,3}\\.){3}\\d{1,3}$', what: 'an IPv4 address' }),
    port: port({ default: 6379 }),
  }, { additionalProperties: false })], { default: null, description: 'The primary this server replicates at first ({host, port}); needs clusterSecret. After a failover Sentinel decides the roles.' }),
  clusterSecret: clusterSecretSchema('The replicated set\'s shared secret, the same file on every host of the set: --set redis.clusterSecret=@FILE (one line, e.g. openssl rand -hex 32). Every password is derived from it on the host, so all nodes agree; null: a standalone server with random passwords.'),
});

export interface RedisParams {
  bind: string[]; port: number; maxmemory: string; maxmemoryPolicy: string; persistence: 'rdb' | 'aof' | 'both' | 'none';
  users: Array<{ name: string; rules: string }>; replicaOf: { host: string; port: number } | null;
  clusterSecret: import('../core/secret.js').Secret | null;
}

/** MemTotal in kB, for maxmemory given as a share of the host's RAM. */
export const memTotalFact: FactRequest<number | null> = {
  key: 'redis:memtotal',
  script: "awk '/^MemTotal:/ { print $2 }' /proc/meminfo",
  parse: (output) => (/^\d+$/.test(output.trim()) ? Number(output.trim()) : null),
};

/** maxmemory as redis.conf takes it: a size as given, a percentage as whole megabytes of MemTotal. */
export function maxmemoryOf(value: string, memTotalKb: number | null): string {
  const percent = /^(\d+)%$/.exec(value);
  if (!percent) return value;
  if (memTotalKb === null) return '0';
  return `${Math.floor((memTotalKb * Number(percent[1])) / 100 / 1024)}mb`;
}

/** All users the ACL file lists, with their rules: admin, the application's, and replica/sentinel with a cluster secret. */
export function aclUsers(p: RedisParams): Array<[string, string]> {
  return [
    ['admin', builtinUsers.admin],
    ...p.users.map((u): [string, string] => [u.name, u.rules]),
    ...(p.clusterSecret ? [['replica', builtinUsers.replica], ['sentinel', builtinUsers.sentinel]] as Array<[string, string]> : []),
  ];
}

const secretsArgs = (mode: 'check' | 'apply', p: RedisParams): string[] =>
  [mode, secretsDir, aclPath, p.clusterSecret ? authPath : '-', p.clusterSecret ? clusterSecretPath : '-', ...aclUsers(p).flat()];

export interface SecretsState { passwords: Record<string, 'ok' | 'due'>; acl: 'same' | 'differs'; auth: 'same' | 'differs' | 'none' }

/** The password files, the ACL file and the replication include, compared on the host with what they must hold. */
export function secretsFact(p: RedisParams): FactRequest<SecretsState> {
  const argv = ['sh', '-c', redisSecretsScript, 'zanuri-redis', ...secretsArgs('check', p)];
  return {
    key: `redis:secrets:${JSON.stringify(secretsArgs('check', p))}`,
    script: `${argv.map(quoteArg).join(' ')} 2>/dev/null || echo 'acl differs'`,
    parse(output) {
      const state: SecretsState = { passwords: {}, acl: 'differs', auth: p.clusterSecret ? 'differs' : 'none' };
      for (const line of output.split('\n')) {
        const pw = /^pw (\S+) (ok|due)$/.exec(line);
        if (pw) state.passwords[pw[1] as string] = pw[2] as 'ok' | 'due';
        else if (line === 'acl same') state.acl = 'same';
        else if (/^auth (same|differs|none)$/.test(line)) state.auth = line.slice(5) as SecretsState['auth'];
      }
      return state;
    },
  };
}

export const redis = defineStep({
  id,
  title: 'Redis',
  params: schema,

  check(raw): RedisParams {
    const secret = clusterSecret(id, raw.clusterSecret);
    const names = raw.users.map((u) => u.name);
    const reserved = names.find((n) => reservedUsers.has(n));
    if (reserved) throw new ConfigError(`${id}: user "${reserved}" is zanuri's own (default is off; admin, replica and sentinel are built in)`);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice) throw new ConfigError(`${id}: user "${twice}" is listed twice`);
    if (raw.replicaOf && !secret) throw new ConfigError(`${id}: replicaOf needs clusterSecret: the replica logs in to its primary with a password derived from it`, { hint: 'give every host of the set the same --set redis.clusterSecret=@FILE' });
    if (raw.bind.some((a) => ['127.0.0.1', '::1', '0.0.0.0', '::'].includes(a))) throw new ConfigError(`${id}: bind lists this host's internal addresses; loopback is always bound and a wildcard is refused`);
    return { ...raw, persistence: raw.persistence as RedisParams['persistence'], clusterSecret: secret };
  },

  packages: () => ['redis-server', 'redis-tools'],

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'Redis (ACL users only)' }],

  facts: (p) => [memTotalFact, secretsFact(p)],

  resources(facts, p, { templates }) {
    const s = facts.get(secretsFact(p));
    const restart = [{ unit, op: 'restart' as const }];
    const rdb = p.persistence === 'rdb' || p.persistence === 'both';
    const conf = templates.render('redis/redis.conf', {
      bind: ['127.0.0.1', '-::1', ...p.bind].join(' '), port: p.port, aclFile: aclPath,
      maxmemory: maxmemoryOf(p.maxmemory, facts.get(memTotalFact)), policy: p.maxmemoryPolicy, persistence: p.persistence,
      save: rdb ? '3600 1 300 100 60 10000' : '""', appendonly: p.persistence === 'aof' || p.persistence === 'both' ? 'yes' : 'no',
      replicaOf: p.replicaOf ? [p.replicaOf] : [], authInclude: p.clusterSecret ? [authPath] : [],
    });
    const dropIn = file(dropInPath, templates.render('redis/redis-server.service.conf', { config: configPath }), {
      notify: restart, whyMissing: `redis-server does not read ${configPath} yet`,
    });
    const due = Object.entries(s.passwords).filter(([, v]) => v === 'due').map(([k]) => k);
    const secretsWhy = due.length ? `${due.join(', ')} ${due.length === 1 ? 'has' : 'have'} no password yet (${p.clusterSecret ? 'derived on the host from the cluster secret' : 'generated on the host'}; it never leaves it)`
      : s.acl !== 'same' ? `${aclPath} does not hold the users' password hashes and rules`
        : s.auth === 'differs' ? `${authPath} does not hold the replication login` : null;
    return [
      directory('/etc/zanuri', { mode: 0o755 }),
      directory(secretsDir, { mode: 0o700 }),
      ...(p.clusterSecret ? [file(clusterSecretPath, templates.render('redis/cluster.secret', { secret: p.clusterSecret }), {
        mode: 0o600, whyMissing: 'the cluster secret is not on the host yet', whyDiffers: `${clusterSecretPath} is not the cluster secret given`,
      })] : []),
      // Debian's /etc/redis is setgid redis: the directory inherits it.
      directory(configDir, { mode: 0o2750, owner: 'root', group: 'redis' }),
      command('redis-secrets', secretsWhy, { argv: ['sh', '-c', redisSecretsScript, 'zanuri-redis', ...secretsArgs('apply', p)] }, {
        display: `write the passwords of ${aclUsers(p).map(([n]) => n).join(', ')} under ${secretsDir} (0600 root), their hashes into ${aclPath}${p.clusterSecret ? ` and the replication login into ${authPath}` : ''} (0640 root:redis)`,
        notify: restart,
      }),
      file(configPath, conf, { mode: 0o640, owner: 'root', group: 'redis', notify: restart, whyMissing: `${configPath} does not exist yet` }),
      directory(dropInDir),
      dropIn,
      command('redis-daemon-reload', dropIn.plan(facts).length ? 'systemd reads the changed redis-server.service drop-in' : null, { argv: ['systemctl', 'daemon-reload'] }),
      service(unit, { enabled: true, running: true }),
    ];
  },

  converged: (p, facts) => `Redis listens on 127.0.0.1${p.bind.length ? `, ${p.bind.join(', ')}` : ''} port ${p.port} (default user off; ${aclUsers(p).map(([n]) => n).join(', ')}), maxmemory ${maxmemoryOf(p.maxmemory, facts.get(memTotalFact))} ${p.maxmemoryPolicy}, persistence ${p.persistence}${p.replicaOf ? `, replicating ${p.replicaOf.host}:${p.replicaOf.port} at first` : ''}`,

  /** Every user logs in with its password file (PING answers PONG only after AUTH); the default user is refused. */
  async verify(ctx, p) {
    const deadline = Date.now() + 20_000;
    for (const [name] of aclUsers(p)) {
      let who = await ctx.run({ argv: ['sh', '-c', redisCliScript, 'zanuri-redis-cli', passwordPath(name), name, String(p.port), 'PING'] });
      // A restart just happened: redis may still be loading its data.
      while ((!who.ok || who.stdout.trim() !== 'PONG') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        who = await ctx.run({ argv: ['sh', '-c', redisCliScript, 'zanuri-redis-cli', passwordPath(name), name, String(p.port), 'PING'] });
      }
      if (!who.ok || who.stdout.trim() !== 'PONG') throw new CommandError(who, `redis-cli --user ${name} PING (password from ${passwordPath(name)}) answered ${JSON.stringify(who.stdout.trim().slice(0, 80))}`);
    }
    const anonymous = await ctx.run({ argv: ['timeout', '20', 'redis-cli', '-h', '127.0.0.1', '-p', String(p.port), 'PING'] });
    if (!/NOAUTH|WRONGPASS|NOPERM|Authentication required/i.test(anonymous.stdout + anonymous.stderr)) {
      throw new ConfigError(`${id}: a client without a password got "${(anonymous.stdout + anonymous.stderr).trim().slice(0, 80)}", not an authentication error`);
    }
  },
});
