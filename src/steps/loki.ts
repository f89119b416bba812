import { CommandError } from '../core/errors.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import { service } from '../resources/service.js';
import { checkGrafanaRepository, grafanaRepository, grafanaRepositoryParams, type GrafanaRepositoryParams } from './grafana-shared.js';
import { params, port, Type } from './schema.js';
import { localHttpCmd } from './service-shared.js';
import { defineStep } from './types.js';

const unit = 'loki.service';
/** Where the loki package's unit reads its configuration (-config.file). */
export const configPath = '/etc/loki/config.yml';
export const dataDir = '/var/lib/loki';

interface Params extends GrafanaRepositoryParams { port: number; grpcPort: number; retentionDays: number }

/**
 * Loki, the monitoring server's log store (seed 002; seed 003: "Loki + Promtail", logs kept 90 days),
 * from Grafana's apt repository (grafana-shared.ts): one process, logs on the local filesystem under
 * /var/lib/loki, retention by the compactor, no usage reporting. Its HTTP port (the push API the
 * fleet's log shippers use, and Grafana's datasource) is open to the internal networks only; gRPC
 * stays on loopback. The configuration is checked with `loki -verify-config` on the staged copy.
 */
export const loki = defineStep({
  id: 'loki',
  title: 'Loki log store',
  after: ['ufw'],
  params: params({
    port: port({ default: 3100, description: 'Loki\'s HTTP port: the push API and queries (internal networks only).' }),
    grpcPort: port({ default: 9096, description: 'Loki\'s gRPC port (loopback only).' }),
    retentionDays: Type.Integer({ minimum: 1, maximum: 3650, default: 90, description: 'Logs older than this are deleted (seed 003: "Logs | 1-10GB/day | HDD | 90 days").' }),
    ...grafanaRepositoryParams,
  }),

  check: (raw): Params => checkGrafanaRepository('loki', raw) as Params,

  serves: (p) => [{ port: p.port, protocol: 'tcp', access: 'internal', why: 'Loki\'s push and query API' }],

  resources(_facts, p, ctx) {
    return [
      grafanaRepository(p, ctx),
      packages(['loki']),
      directory(dataDir, { mode: 0o750, owner: 'loki', group: 'loki' }),
      file(configPath, ctx.templates.render('loki/config.yml', { port: p.port, grpcPort: p.grpcPort, dataDir, retention: `${p.retentionDays * 24}h` }), {
        mode: 0o640, owner: 'root', group: 'loki',
        validate: { argv: ['loki', '-config.file', '{}', '-verify-config'] },
        notify: [{ unit, op: 'restart' }],
        whyDiffers: `${configPath} differs from zanuri's (port ${p.port}, logs in ${dataDir}, kept ${p.retentionDays} days)`,
      }),
      service(unit),
    ];
  },

  converged: (p) => `Loki on ${p.port} (internal) from ${p.repositoryUrl}, logs in ${dataDir} kept ${p.retentionDays} days`,

  async verify(ctx, p) {
    const ready = await ctx.run(localHttpCmd(p.port, '/ready', 'ready'));
    if (!ready.ok) throw new CommandError(ready, `GET http://127.0.0.1:${p.port}/ready (Loki is not ready)`);
  },
});
