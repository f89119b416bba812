import { CommandError } from '../core/errors.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { params, port } from './schema.js';
import { localHttpCmd } from './service-shared.js';
import { defineStep } from './types.js';

export const defaultsPath = '/etc/default/prometheus-node-exporter';
const unit = 'prometheus-node-exporter.service';


/**
 * prometheus-node-exporter (Debian's package) on every host: the host's metrics on `port`, which
 * the firewall opens to the internal networks only (the monitoring server scrapes it from there).
 */
export const nodeExporter = defineStep({
  id: 'node-exporter',
  title: 'Prometheus node exporter',
  after: ['ufw'],
  params: params({
    port: port({ default: 9100, description: 'The port node_exporter serves /metrics on (internal networks only).' }),
  }),

  packages: () => ['prometheus-node-exporter'],

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'node_exporter\'s metrics, scraped by the monitoring server' }],

  resources: (_facts, p, { templates }) => [
    file(defaultsPath, templates.render('prometheus/node-exporter.default', p), {
      notify: [{ unit, op: 'restart' }],
      whyDiffers: `${defaultsPath} differs from the wanted arguments (port ${p.port})`,
    }),
    service(unit),
  ],

  converged: (p) => `node_exporter serves the host's metrics on ${p.port} (internal)`,

  async verify(ctx, p) {
    const metrics = await ctx.run(localHttpCmd(p.port, '/metrics', 'node_exporter_build_info'));
    if (!metrics.ok) throw new CommandError(metrics, `GET http://127.0.0.1:${p.port}/metrics (node_exporter does not answer)`);
  },
});
