import { CommandError } from '../core/errors.js';
import { commandFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import { service } from '../resources/service.js';
import { checkGrafanaRepository, grafanaRepository, grafanaRepositoryParams, type GrafanaRepositoryParams } from './grafana-shared.js';
import { params, port, Type, url } from './schema.js';
import { localHttpCmd } from './service-shared.js';
import { defineStep } from './types.js';

const unit = 'grafana-server.service';
export const secretsDir = '/etc/zanuri/grafana';
export const passwordPath = `${secretsDir}/admin.password`;
const dropInDir = '/etc/systemd/system/grafana-server.service.d';
export const dropInPath = `${dropInDir}/zanuri.conf`;
export const datasourcesPath = '/etc/grafana/provisioning/datasources/zanuri.yaml';
export const dashboardsProviderPath = '/etc/grafana/provisioning/dashboards/zanuri.yaml';
export const dashboardsDir = '/etc/grafana/dashboards/zanuri';
export const dashboardPath = `${dashboardsDir}/fleet.json`;

interface Params extends GrafanaRepositoryParams { port: number; prometheusUrl: string; lokiUrl: string | null; scrapeInterval: string }

/** Exit 0 when the admin password file is there: one line of 32 letters and digits, 0600 root. */
export const passwordFact = () => commandFact(['sh', '-c', 'f=$1; [ -s "$f" ] && [ "$(stat -c "%a %U" -- "$f")" = "600 root" ] && grep -qx "[A-Za-z0-9]\\{32\\}" "$f"', 'zanuri-grafana-pw', passwordPath]);
const passwordReady = (facts: FactValues): boolean => facts.get(passwordFact()).exitCode === 0;
/** 32 random letters and digits, generated on the host, never printed. */
const makePassword = { argv: ['sh', '-c', 'umask 077 && mkdir -p -m 0700 -- "$(dirname -- "$1")" && t=$(mktemp -- "$1.XXXXXX") && LC_ALL=C tr -dc A-Za-z0-9 < /dev/urandom | head -c 32 > "$t" && chown root:root -- "$t" && chmod 600 -- "$t" && mv -f -- "$t" "$1"', 'zanuri-grafana-pw', passwordPath] as [string, ...string[]] };

/**
 * Grafana on the monitoring server (seed 002; seed 003: port 3000, not public), from Grafana's apt
 * repository (grafana-shared.ts). Its settings are GF_* variables in a systemd drop-in (no sign-up,
 * no anonymous access, no phoning home), the first admin's password is generated on the host
 * (/etc/zanuri/grafana/admin.password, 0600 root, handed to the service as a systemd credential and
 * never printed), the Prometheus and Loki datasources are provisioned, and so is a read-only fleet
 * dashboard (templates/grafana/zanuri-fleet.json). The firewall opens `port` to the internal
 * networks only.
 */
export const grafana = defineStep({
  id: 'grafana',
  title: 'Grafana (datasources and fleet dashboard)',
  after: ['ufw', 'prometheus', 'loki'],
  params: params({
    port: port({ default: 3000, description: 'The port of Grafana\'s web UI (internal networks only; seed 003: "Grafana | 3000").' }),
    prometheusUrl: url({ default: 'http://localhost:9090', description: 'The Prometheus datasource (the default one).' }),
    lokiUrl: Type.Union([url(), Type.Null()], { default: 'http://localhost:3100', description: 'The Loki datasource; null: none.' }),
    scrapeInterval: Type.String({ pattern: '^[1-9][0-9]{0,3}[smh]$', default: '15s', what: 'a duration like 15s', description: 'Prometheus\'s scrape interval, Grafana\'s smallest step for its queries.' }),
    ...grafanaRepositoryParams,
  }),

  check: (raw): Params => checkGrafanaRepository('grafana', raw) as Params,

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'Grafana\'s web UI (seed 003: not public)' }],

  facts: () => [passwordFact()],

  resources(facts, p, ctx) {
    const { templates } = ctx;
    const restart = [{ unit, op: 'restart' as const }];
    const dropIn = file(dropInPath, templates.render('grafana/grafana-server.service.conf', { port: p.port, passwordFile: passwordPath }), {
      notify: restart, whyMissing: `Grafana does not run with zanuri's settings yet (port ${p.port}, no sign-up, no anonymous access, the admin password from ${passwordPath})`,
    });
    const provisioning = { mode: 0o640, owner: 'root', group: 'grafana', notify: restart };
    return [
      grafanaRepository(p, ctx),
      packages(['grafana']),
      directory('/etc/zanuri', { mode: 0o755 }),
      directory(secretsDir, { mode: 0o700 }),
      command('grafana-admin-password', passwordReady(facts) ? null : `the first admin has no password yet (generated on the host into ${passwordPath}, 0600 root; it never leaves it)`, makePassword, {
        display: `generate the admin password into ${passwordPath} (0600 root, on the host)`, notify: restart,
      }),
      directory(dropInDir),
      dropIn,
      command('grafana-daemon-reload', dropIn.plan(facts).length ? 'systemd reads the changed grafana-server.service drop-in' : null, { argv: ['systemctl', 'daemon-reload'] }),
      file(datasourcesPath, templates.render('grafana/datasources.yaml', { prometheusUrl: p.prometheusUrl, scrapeInterval: p.scrapeInterval, loki: p.lokiUrl ? [{ url: p.lokiUrl }] : [] }), {
        ...provisioning, whyMissing: `Grafana has no datasources yet (Prometheus ${p.prometheusUrl}${p.lokiUrl ? `, Loki ${p.lokiUrl}` : ''})`,
      }),
      directory(dashboardsDir, { mode: 0o750, owner: 'root', group: 'grafana' }),
      file(dashboardPath, templates.render('grafana/zanuri-fleet.json', {}), { ...provisioning, whyMissing: 'the fleet dashboard is not there yet' }),
      file(dashboardsProviderPath, templates.render('grafana/dashboards.yaml', { dir: dashboardsDir }), { ...provisioning, whyMissing: `Grafana does not load the dashboards in ${dashboardsDir} yet` }),
      service(unit),
    ];
  },

  converged: (p) => `Grafana on ${p.port} (internal) from ${p.repositoryUrl}, datasources Prometheus (${p.prometheusUrl})${p.lokiUrl ? ` and Loki (${p.lokiUrl})` : ''}, the fleet dashboard; admin password in ${passwordPath}`,

  async verify(ctx, p) {
    const health = await ctx.run(localHttpCmd(p.port, '/api/health', '"database"'));
    if (!health.ok) throw new CommandError(health, `GET http://127.0.0.1:${p.port}/api/health (Grafana does not answer)`);
  },
});
