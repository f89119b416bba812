import { CommandError, ConfigError } from '../core/errors.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { params, port, Type } from './schema.js';
import { localHttpCmd } from './service-shared.js';
import { defineStep } from './types.js';

export const defaultsPath = '/etc/default/prometheus-redis-exporter';
const unit = 'prometheus-redis-exporter.service';
const dropInDir = '/etc/systemd/system/prometheus-redis-exporter.service.d';
export const dropInPath = `${dropInDir}/zanuri.conf`;
/** Where the redis step keeps each ACL user's password (0600 root); see redis.ts. */
export const passwordPath = (user: string): string => `/etc/zanuri/redis/${user}.password`;

/**
 * The least-privilege ACL rules of the exporter's Redis user, for the redis step's `users` list:
 * no keys, no channels, and of all commands only what a default scrape needs: INFO (every metric
 * of redis_up, memory, clients, replication, persistence, keyspace), PING, CLIENT SETNAME (the
 * exporter names its connection), LATENCY LATEST/HISTOGRAM and SLOWLOG LEN. Left out on purpose:
 * CONFIG GET (it returns every setting, masterauth included, i.e. the replication password; the
 * exporter reads maxmemory from INFO instead), SLOWLOG GET (its entries hold the arguments of slow
 * commands, i.e. data), and any key command (the exporter's key checks are off).
 */
export const exporterAclRules = '-@all +ping +info +client|setname +latency|latest +latency|histogram +slowlog|len';

/**
 * prometheus-redis-exporter (Debian's package, 1.45) beside Redis: it logs in as its own ACL user
 * (`user`, declared in the redis step's `users` with exporterAclRules), reading the password that
 * the redis step generated on the host through a systemd credential, and serves the metrics on
 * `port`, which the firewall opens to the internal networks only (the monitoring server scrapes it).
 */
export const redisExporter = defineStep({
  id: 'redis-exporter',
  title: 'Prometheus Redis exporter',
  after: ['ufw', 'redis'],
  params: params({
    port: port({ default: 9121, description: 'The port redis_exporter serves /metrics on (internal networks only).' }),
    redisPort: port({ default: 6379, description: 'The local Redis port the exporter scrapes (127.0.0.1).' }),
    user: Type.String({
      pattern: '^[a-z][a-z0-9_-]{0,31}$', default: 'exporter', what: 'a Redis user name',
      description: `The Redis ACL user the exporter logs in as; list it in the redis step's users with rules "${exporterAclRules}" (its password file is /etc/zanuri/redis/USER.password).`,
    }),
  }),

  check(p) {
    if (['default', 'admin', 'replica', 'sentinel'].includes(p.user)) throw new ConfigError(`redis-exporter: user "${p.user}" is one of Redis's own users; the exporter needs a least-privilege user of its own`, { hint: `add { name: exporter, rules: '${exporterAclRules}' } to the redis step's users` });
    return p;
  },

  packages: () => ['prometheus-redis-exporter'],

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'redis_exporter\'s metrics, scraped by the monitoring server' }],

  resources(facts, p, { templates }) {
    const restart = [{ unit, op: 'restart' as const }];
    const dropIn = file(dropInPath, templates.render('prometheus/redis-exporter.service.conf', { user: p.user, passwordFile: passwordPath(p.user) }), {
      notify: restart, whyMissing: `the exporter does not log in to Redis as ${p.user} yet (password from ${passwordPath(p.user)} as a systemd credential)`,
    });
    return [
      file(defaultsPath, templates.render('prometheus/redis-exporter.default', { user: p.user, port: p.port, redisPort: p.redisPort }), {
        notify: restart,
        whyDiffers: `${defaultsPath} differs from the wanted settings (redis://127.0.0.1:${p.redisPort} as ${p.user}, port ${p.port})`,
      }),
      directory(dropInDir),
      dropIn,
      command('redis-exporter-daemon-reload', dropIn.plan(facts).length ? 'systemd reads the changed prometheus-redis-exporter.service drop-in' : null, { argv: ['systemctl', 'daemon-reload'] }),
      service(unit),
    ];
  },

  converged: (p) => `redis_exporter serves Redis's metrics on ${p.port} (internal), logged in as the ACL user ${p.user}`,

  /** The user's password must be there before the exporter starts with it: the redis step writes it. */
  async beforeApply(ctx, p) {
    const there = await ctx.run({ argv: ['test', '-s', passwordPath(p.user)] });
    if (!there.ok) {
      throw new ConfigError(`redis-exporter: ${passwordPath(p.user)} does not exist: Redis has no ACL user "${p.user}" for the exporter`, {
        hint: `list it in the redis step's users: { name: ${p.user}, rules: '${exporterAclRules}' } (playbooks/redis-*.yaml do)`,
      });
    }
  },

  async verify(ctx, p) {
    const metrics = await ctx.run(localHttpCmd(p.port, '/metrics', 'redis_up 1'));
    if (!metrics.ok) throw new CommandError(metrics, `GET http://127.0.0.1:${p.port}/metrics (redis_exporter does not reach Redis as ${p.user}: no "redis_up 1")`);
  },
});
