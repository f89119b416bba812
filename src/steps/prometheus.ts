import { CommandError, ConfigError } from '../core/errors.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { params, port, Type } from './schema.js';
import { localHttpCmd } from './service-shared.js';
import { defineStep } from './types.js';

export const configPath = '/etc/prometheus/prometheus.yml';
export const defaultsPath = '/etc/default/prometheus';
export const rulesDir = '/etc/prometheus/rules';
export const rulesPath = `${rulesDir}/zanuri.yml`;
const unit = 'prometheus.service';
const hostPort = '^(?:[a-z0-9](?:[a-z0-9.-]{0,252}[a-z0-9])?|\\[[0-9a-fA-F:]+\\]):\\d{1,5}$';

/**
 * The monitoring server's Prometheus (Debian's package): scrapes itself and the jobs given (the
 * fleet's node_exporters, postgres_exporters, redis_exporters as host:port lists), on `port`, which
 * the firewall opens to the internal networks only (seed 003: Prometheus 9090 internal). The
 * configuration is checked with `promtool check config` on the staged copy, then reloaded.
 * With it come the recording and alerting rules an operator expects (templates/prometheus/
 * zanuri-rules.yml: targets down, CPU, memory and disk past seed 004's thresholds, PostgreSQL and
 * Redis down, Redis near maxmemory), checked with `promtool check rules`; every *.yml in
 * /etc/prometheus/rules/ is loaded, so an operator adds rules beside them. Alerts go to the
 * Alertmanagers listed (none by default: they show in Prometheus's UI and API).
 * With an Ansible inventory and no jobs given, provision works them out from the fleet (engine/scrape-jobs.ts);
 * zanuri_set (`prometheus.jobs: [...]`) or --set still wins. Grafana and Loki are the grafana and loki steps.
 */
export const prometheus = defineStep({
  id: 'prometheus',
  title: 'Prometheus monitoring server',
  after: ['ufw', 'node-exporter'],
  params: params({
    port: port({ default: 9090, description: 'The port of Prometheus\'s web UI and HTTP API (internal networks only).' }),
    scrapeInterval: Type.String({ pattern: '^[1-9][0-9]{0,3}[smh]$', default: '15s', what: 'a duration like 15s or 1m', description: 'How often every target is scraped.' }),
    retention: Type.String({ pattern: '^[1-9][0-9]{0,4}[hdwy]$', default: '15d', what: 'a duration like 15d or 4w', description: 'How long samples are kept (--storage.tsdb.retention.time).' }),
    jobs: Type.Array(Type.Object({
      name: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,31}$', what: 'a job name (lower case letters, digits, _ and -)', description: 'The job label (node, postgres, redis).' }),
      targets: Type.Array(Type.String({ pattern: hostPort, what: 'host:port' }), { minItems: 1, description: 'The exporters\' host:port.' }),
    }, { additionalProperties: false }), { default: [{ name: 'node', targets: ['localhost:9100'] }], description: 'Scrape jobs: each a name and the host:port of its exporters (the fleet\'s inventory).' }),
    alertmanagers: Type.Array(Type.String({ pattern: hostPort, what: 'host:port' }), { default: [], description: 'Alertmanagers (host:port) the alerts are sent to; empty: alerts show in Prometheus\'s UI and API only.' }),
  }),

  check(p) {
    const names = ['prometheus', ...p.jobs.map((j) => j.name)];
    if (new Set(names).size !== names.length) throw new ConfigError(`prometheus: job names must be unique and not "prometheus" (${names.join(', ')})`);
    return p;
  },

  packages: () => ['prometheus'],

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'Prometheus\'s UI and API' }],

  resources: (_facts, p, { templates }) => [
    file(defaultsPath, templates.render('prometheus/prometheus.default', p), {
      notify: [{ unit, op: 'restart' }],
      whyDiffers: `${defaultsPath} differs from the wanted arguments (port ${p.port}, retention ${p.retention})`,
    }),
    directory(rulesDir),
    file(rulesPath, templates.render('prometheus/zanuri-rules.yml', {}), {
      validate: { argv: ['promtool', 'check', 'rules', '{}'] },
      notify: [{ unit, op: 'reload' }],
      whyMissing: 'Prometheus has no recording and alerting rules yet', whyDiffers: `${rulesPath} differs from zanuri's rules`,
    }),
    file(configPath, templates.render('prometheus/prometheus.yml', { ...p, rulesDir, alerting: p.alertmanagers.length ? [{ targets: p.alertmanagers }] : [] }), {
      validate: { argv: ['promtool', 'check', 'config', '{}'] },
      notify: [{ unit, op: 'reload' }],
      whyDiffers: `${configPath} differs from the wanted scrape jobs (${p.jobs.map((j) => `${j.name}: ${j.targets.length}`).join(', ') || 'none'})`,
    }),
    service(unit),
  ],

  converged: (p) => `Prometheus on ${p.port} (internal) scrapes ${p.jobs.map((j) => `${j.name} (${j.targets.join(', ')})`).join(', ') || 'itself only'} every ${p.scrapeInterval}, with zanuri's rules${p.alertmanagers.length ? `, alerting ${p.alertmanagers.join(', ')}` : ''}`,

  async verify(ctx, p) {
    const ready = await ctx.run(localHttpCmd(p.port, '/-/ready', ' 200 '));
    if (!ready.ok) throw new CommandError(ready, `GET http://127.0.0.1:${p.port}/-/ready (Prometheus is not ready)`);
  },
});
