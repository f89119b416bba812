import { CommandError } from '../core/errors.js';
import { commandFact, serviceFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { params, port } from './schema.js';
import { localHttpCmd } from './service-shared.js';
import { defineStep } from './types.js';

export const defaultsPath = '/etc/default/prometheus-postgres-exporter';
const unit = 'prometheus-postgres-exporter.service';
/** The package's service user; peer authentication maps it to the role of the same name. */
const role = 'prometheus';

/** 't' when the role exists and is a member of pg_monitor; an empty answer when it does not exist. */
export const monitorRoleFact = commandFact(['runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-c', `select pg_has_role('${role}', 'pg_monitor', 'member') from pg_roles where rolname = '${role}'`]);
const roleReady = (facts: FactValues): boolean => {
  const f = facts.get(monitorRoleFact);
  // The last line: psql, run as postgres from root's home, first warns that it cannot enter it (the fact reads 2>&1).
  return f.exitCode === 0 && f.stdout.trim().split('\n').at(-1)?.trim() === 't';
};
const createRole = { argv: ['runuser', '-u', 'postgres', '--', 'psql', '-Xq', '-v', 'ON_ERROR_STOP=1', '-c', `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF; END $$`, '-c', `GRANT pg_monitor TO ${role}`] as [string, ...string[]] };

/**
 * prometheus-postgres-exporter (Debian's package) beside PostgreSQL: a `prometheus` role in
 * pg_monitor without a password (the exporter logs in over the Unix socket by peer authentication,
 * as its own system user), metrics on `port`, which the firewall opens to the internal networks only.
 */
export const postgresExporter = defineStep({
  id: 'postgres-exporter',
  title: 'Prometheus PostgreSQL exporter',
  after: ['ufw', 'postgresql'],
  params: params({
    port: port({ default: 9187, description: 'The port postgres_exporter serves /metrics on (internal networks only).' }),
  }),

  packages: () => ['prometheus-postgres-exporter'],

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'postgres_exporter\'s metrics, scraped by the monitoring server' }],

  facts: () => [monitorRoleFact, serviceFact(unit)],

  resources: (facts, p, { templates }) => [
    command('postgres-exporter-role', roleReady(facts) ? null : `PostgreSQL has no role ${role} in pg_monitor for the exporter`, createRole, { display: `create role ${role} (LOGIN, no password) and grant pg_monitor` }),
    file(defaultsPath, templates.render('prometheus/postgres-exporter.default', { role, port: p.port }), {
      notify: [{ unit, op: 'restart' }],
      whyDiffers: `${defaultsPath} differs from the wanted connection (role ${role} over the Unix socket) and port ${p.port}`,
    }),
    // The package starts the exporter with an empty DSN: it exits at once, systemd restarts it until
    // the start limit and then refuses to start it at all until the failure is reset.
    command('postgres-exporter-reset-failed', facts.get(serviceFact(unit)).active === 'failed' ? `${unit} has failed (the package started it without a connection string, up to systemd's start limit)` : null,
      { argv: ['systemctl', 'reset-failed', '--', unit] }),
    service(unit),
  ],

  converged: (p) => `postgres_exporter serves PostgreSQL's metrics on ${p.port} (internal) as role ${role} (pg_monitor)`,

  async verify(ctx, p) {
    const metrics = await ctx.run(localHttpCmd(p.port, '/metrics', 'pg_up 1'));
    if (!metrics.ok) throw new CommandError(metrics, `GET http://127.0.0.1:${p.port}/metrics (postgres_exporter does not reach PostgreSQL: no "pg_up 1")`);
  },
});
