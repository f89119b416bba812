import { CommandError, ConfigError } from '../core/errors.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { activeWithin } from './service-shared.js';
import { absolutePath, cidr, params, port, Type } from './schema.js';
import { defineStep } from './types.js';

export const configPath = '/etc/haproxy/haproxy.cfg';
const unit = 'haproxy.service';


const hostPort = '^(?:[a-z0-9](?:[a-z0-9.-]{0,252}[a-z0-9])?|\\[[0-9a-fA-F:]+\\]):\\d{1,5}$';

/**
 * HAProxy (Debian's, 2.6 on bookworm) in front of the application servers: round robin or least
 * connections over the backends given, each checked by an HTTP GET of healthPath (a server that
 * fails three checks gets no requests until it passes two). TLS is terminated here (a PEM with
 * certificate and key, HTTP redirected), passed through to the backends untouched (tcp mode), or
 * absent. The statistics page listens on statsPort, opened by the firewall to the internal
 * networks only, and haproxy itself denies every source but localhost and statsFrom. The
 * configuration is checked with `haproxy -c -f` on the staged copy before it replaces the old one.
 */
export const haproxy = defineStep({
  id: 'haproxy',
  title: 'HAProxy load balancer',
  after: ['ufw'],
  params: params({
    backends: Type.Array(Type.Object({
      name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', what: 'a server name (lower case letters, digits, _ and -)', description: 'The server\'s name in haproxy\'s logs and statistics.' }),
      address: Type.String({ pattern: hostPort, what: 'host:port', description: 'Where the application listens.' }),
    }, { additionalProperties: false }), { minItems: 1, default: [{ name: 'app1', address: '127.0.0.1:8000' }], description: 'The application servers (name and host:port); requests go to those that pass the health check.' }),
    port: port({ default: 80, description: 'The plain HTTP port (only redirects to HTTPS when tls is terminate or passthrough).' }),
    tls: Type.Union([Type.Literal('none'), Type.Literal('terminate'), Type.Literal('passthrough')], { default: 'none', description: 'terminate: HTTPS ends here with certificate; passthrough: TLS goes untouched to the backends (which then speak TLS); none: HTTP only.' }),
    tlsPort: port({ default: 443, description: 'The HTTPS port (tls terminate or passthrough).' }),
    certificate: Type.Union([absolutePath(), Type.Null()], { default: null, what: 'an absolute path', description: 'PEM file with the certificate chain and its key, on the host (tls terminate).' }),
    healthPath: Type.String({ pattern: '^/(?!(?:.*/)?\\.\\.(?:/|$))[A-Za-z0-9._~/-]{0,200}$', default: '/health', what: 'a URL path (no .. segment)', description: 'The path each backend must answer with 200 to get requests (tls none or terminate).' }),
    balance: Type.Union([Type.Literal('roundrobin'), Type.Literal('leastconn')], { default: 'roundrobin', description: 'How requests are spread over the healthy backends.' }),
    maxconn: Type.Integer({ minimum: 100, maximum: 1_000_000, default: 4096, description: 'Connections haproxy accepts at once.' }),
    statsPort: port({ default: 8404, description: 'The statistics page (/stats): internal networks only.' }),
    statsFrom: Type.Array(cidr(), { default: [], description: 'Sources allowed to see the statistics page besides localhost (the monitoring host, the operators\' network).' }),
  }),

  check(p) {
    if (p.tls === 'terminate' && !p.certificate) throw new ConfigError('haproxy: tls terminate needs certificate (a PEM file with the certificate chain and its key)');
    if (p.tls !== 'terminate' && p.certificate) throw new ConfigError(`haproxy: certificate is only used with tls terminate (tls is ${p.tls})`);
    const ports = [p.port, p.statsPort, ...(p.tls === 'none' ? [] : [p.tlsPort])];
    if (new Set(ports).size !== ports.length) throw new ConfigError(`haproxy: port, tlsPort and statsPort must differ (${ports.join(', ')})`);
    const names = p.backends.map((b) => b.name);
    if (new Set(names).size !== names.length) throw new ConfigError(`haproxy: backend names must be unique (${names.join(', ')})`);
    return p;
  },

  packages: () => ['haproxy'],

  serves: (p) => [
    { port: p.port, protocol: 'tcp', access: 'public', why: p.tls === 'none' ? 'haproxy serves the application over HTTP' : 'haproxy redirects HTTP to HTTPS' },
    ...(p.tls === 'none' ? [] : [{ port: p.tlsPort, protocol: 'tcp' as const, access: 'public' as const, why: `haproxy serves HTTPS (${p.tls === 'terminate' ? 'TLS ends here' : 'TLS passed through'})` }]),
    { port: p.statsPort, protocol: 'tcp', access: 'internal', why: 'haproxy\'s statistics page' },
  ],

  resources: (_facts, p, { templates }) => [
    file(configPath, templates.render('haproxy/haproxy.cfg', {
      ...p, redirect: p.tls !== 'none', terminate: p.tls === 'terminate', passthrough: p.tls === 'passthrough', certificate: p.certificate ?? '',
    }), {
      validate: { argv: ['haproxy', '-c', '-q', '-f', '{}'] },
      notify: [{ unit, op: 'reload' }],
      whyMissing: `no ${configPath}`,
      whyDiffers: `${configPath} differs from the wanted load balancer (${p.backends.length} backend${p.backends.length === 1 ? '' : 's'}, tls ${p.tls})`,
    }),
    service(unit),
  ],

  converged: (p) => `haproxy balances ${p.backends.map((b) => b.address).join(', ')} on port ${p.port}${p.tls === 'none' ? '' : ` and ${p.tlsPort} (tls ${p.tls})`}, statistics on ${p.statsPort} (internal)`,

  async verify(ctx) {
    // Bounded wait: right after a reload systemd reports "reloading" for a moment.
    const active = await ctx.run(activeWithin(unit));
    if (!active.ok) throw new CommandError(active, `systemctl is-active ${unit} (not active within 15 s)`);
  },
});
