import { ConfigError } from '../core/errors.js';
import type { Action } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { Cmd } from '../core/types.js';
import { fileFact, type FactRequest, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { absent, file } from '../resources/file.js';
import { link } from '../resources/link.js';
import { directory } from '../resources/directory.js';
import { service } from '../resources/service.js';
import { appSnippet, nginxTest, redirectDir, redirectSnippet, reloadNginx, serverSnippet, webrootParam } from './nginx-shared.js';
import { absolutePath, domainName, email, params, Type, url, type Static } from './schema.js';
import { defineStep } from './types.js';

export const letsEncrypt = 'https://acme-v02.api.letsencrypt.org/directory';
export const letsEncryptStaging = 'https://acme-staging-v02.api.letsencrypt.org/directory';
export const tlsSitePath = '/etc/nginx/sites-available/zanuri-tls';
export const tlsSiteLink = '/etc/nginx/sites-enabled/zanuri-tls';
export const deployHookPath = '/etc/letsencrypt/renewal-hooks/deploy/zanuri-reload-nginx';
/** certbot.timer runs certbot.service: a private ACME CA must be trusted there too, or renewals fail. */
export const caDropInPath = '/etc/systemd/system/certbot.service.d/zanuri-ca-bundle.conf';
export const liveDir = (domain: string): string => `/etc/letsencrypt/live/${domain}`;
export const renewalConf = (domain: string): string => `/etc/letsencrypt/renewal/${domain}.conf`;
/** Renew when the certificate ends within this many days (certbot's own renewal threshold). */
export const renewWithinDays = 30;
const daemonReload: Cmd = { argv: ['systemctl', 'daemon-reload'] };

export interface CertificateState {
  /** absent: no certificate or key; expiring: ends within renewWithinDays (or unreadable); valid otherwise. */
  status: 'absent' | 'expiring' | 'valid';
  /** DNS names in the certificate's subjectAltName. */
  names: string[];
}

/** The live certificate of a certbot lineage: present, ending soon, and the names it covers. */
export function certificateFact(domain: string): FactRequest<CertificateState> {
  const dir = quoteArg(liveDir(domain));
  return {
    key: `certificate:${domain}`,
    script: [
      `if [ -f ${dir}/fullchain.pem ] && [ -f ${dir}/privkey.pem ]; then`,
      `  if openssl x509 -in ${dir}/fullchain.pem -noout -checkend ${renewWithinDays * 86400} >/dev/null 2>&1; then echo valid; else echo expiring; fi`,
      `  openssl x509 -in ${dir}/fullchain.pem -noout -ext subjectAltName 2>/dev/null || true`,
      'else echo absent; fi',
    ].join('\n'),
    parse: parseCertificate,
  };
}

export function parseCertificate(output: string): CertificateState {
  const [head = '', ...rest] = output.split('\n');
  const status = head.trim() === 'valid' ? 'valid' : head.trim() === 'expiring' ? 'expiring' : 'absent';
  if (status === 'absent') return { status, names: [] };
  const names = [...rest.join('\n').matchAll(/DNS:([^,\s]+)/g)].map((m) => (m[1] ?? '').toLowerCase());
  return { status, names };
}

/** The installed nginx's version as [major, minor, patch]; null when nginx is missing or says something else. */
export const nginxVersionFact: FactRequest<[number, number, number] | null> = {
  key: 'nginx-version',
  script: 'nginx -v 2>&1 || true',
  parse: parseNginxVersion,
};

export function parseNginxVersion(output: string): [number, number, number] | null {
  const m = /nginx version: nginx\/(\d+)\.(\d+)\.(\d+)/.exec(output);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/**
 * ssl_reject_handshake came with nginx 1.19.4 (Ubuntu 22.04 ships 1.18): older ones complete the
 * handshake of other names with this certificate and then close without an answer (444). Unknown
 * (nginx not installed yet, so a dry run on a bare host) counts as new: the engine reads the facts
 * again after the packages are installed, before this step is planned for real.
 */
export const rejectsHandshake = (version: [number, number, number] | null): boolean =>
  version === null || version[0] > 1 || (version[0] === 1 && (version[1] > 19 || (version[1] === 19 && version[2] >= 4)));

/** The `server = URL` line of a certbot renewal configuration; null when the file or line is missing. */
export function renewalServer(content: string | null): string | null {
  if (content === null) return null;
  return /^server\s*=\s*(\S+)\s*$/m.exec(content)?.[1] ?? null;
}

const schema = params({
  domain: domainName({ description: 'The DNS name the certificate is for; it must resolve to this host for the HTTP-01 challenge.' }),
  email: email({ description: 'The ACME account\'s contact address (expiry notices).' }),
  server: Type.Optional(url({ description: `ACME directory URL; default Let's Encrypt (${letsEncrypt}). Not with staging.` })),
  staging: Type.Boolean({ default: false, description: 'Use Let\'s Encrypt\'s staging directory.' }),
  caBundle: Type.Union([absolutePath(), Type.Null()], { default: null, what: 'an absolute path', description: 'A CA bundle on the host that certbot must trust for the ACME server (a private ACME CA).' }),
  webroot: webrootParam,
  hstsMaxAge: Type.Integer({ minimum: 0, maximum: 63072000, default: 63072000, what: 'seconds from 0 to 63072000', description: 'Strict-Transport-Security max-age of the HTTPS site (browsers then refuse plain HTTP for that long); 0 tells browsers to forget it.' }),
});
export type CertbotParams = Omit<Static<typeof schema>, 'server'> & { server: string };

export const wantedServer = (p: CertbotParams): string => (p.staging ? letsEncryptStaging : p.server);

export function certonlyCmd(p: CertbotParams, force: boolean): Cmd {
  return {
    argv: [
      'env', ...(p.caBundle ? [`REQUESTS_CA_BUNDLE=${p.caBundle}`] : []),
      'certbot', 'certonly', '--webroot', '-w', p.webroot, '-d', p.domain, '--cert-name', p.domain,
      '--non-interactive', '--agree-tos', '-m', p.email, '--no-eff-email',
      ...(p.staging ? ['--staging'] : ['--server', p.server]),
      ...(force ? ['--force-renewal'] : []),
    ],
  };
}

/** Why certbot must run now, or null when the live certificate is fine. */
function certificateWhy(facts: FactValues, p: CertbotParams): string | null {
  const cert = facts.get(certificateFact(p.domain));
  const server = renewalServer(facts.get(fileFact(renewalConf(p.domain))).content);
  if (cert.status === 'absent') return `no certificate for ${p.domain} yet`;
  if (cert.status === 'expiring') return `the certificate for ${p.domain} ends within ${renewWithinDays} days`;
  if (!cert.names.includes(p.domain)) return `the certificate does not cover ${p.domain} (it covers ${cert.names.join(', ') || 'no DNS name'})`;
  if (server !== wantedServer(p)) return `the certificate comes from ${server ?? 'an unknown server'}, not ${wantedServer(p)}`;
  return null;
}

/**
 * A certificate for one domain from an ACME server (Let's Encrypt by default), obtained with
 * `certbot certonly --webroot`: the nginx step's site serves the HTTP-01 challenge from the webroot.
 * certbot's nginx installer is never used (it rewrites nginx's configuration, which the nginx step
 * would see as drift on every run); this step writes its own HTTPS site instead, which includes the
 * nginx step's snippets (the same application, /health and headers as over HTTP) and adds HSTS, a
 * default server that refuses handshakes for other names, and a redirect of the HTTP site's
 * `location /` to HTTPS (see nginx-shared.ts); plus a deploy hook that reloads nginx after a
 * renewal, and keeps certbot.timer enabled and active.
 */
export const certbot = defineStep({
  id: 'certbot',
  title: 'TLS certificate (certbot)',
  after: ['nginx'],
  params: schema,

  check(p): CertbotParams {
    if (p.staging && p.server !== undefined) throw new ConfigError('certbot: staging uses Let\'s Encrypt\'s staging server; do not give server too');
    return { ...p, server: p.server ?? letsEncrypt };
  },

  packages: () => ['certbot', 'nginx', 'openssl'],

  serves: () => [
    { port: 443, protocol: 'tcp', access: 'public', why: 'nginx serves the site over HTTPS' },
    { port: 80, protocol: 'tcp', access: 'public', why: 'HTTP-01 challenges and the redirect to HTTPS' },
  ],

  facts: (p) => [certificateFact(p.domain), fileFact(renewalConf(p.domain)), nginxVersionFact],

  resources(facts, p, { templates }) {
    const certWhy = certificateWhy(facts, p);
    const checked = { validateInPlace: nginxTest, notify: reloadNginx };
    const trust = `renewals by certbot.timer must trust ${p.caBundle} too`;
    const dropIn = p.caBundle
      ? file(caDropInPath, templates.render('certbot/ca-bundle.conf', { caBundle: p.caBundle }), { whyMissing: trust, whyDiffers: trust })
      : absent(caDropInPath, { why: 'no caBundle is configured any more' });
    return [
      command(`certificate:${p.domain}`, certWhy, certonlyCmd(p, facts.get(certificateFact(p.domain)).status !== 'absent'), {
        notify: reloadNginx, describe: `a certificate for ${p.domain} from ${wantedServer(p)}`,
      }),
      // Written before it is linked: once enabled, `nginx -t` never sees a link to a missing file.
      file(tlsSitePath, templates.render('certbot/tls-site.conf', {
        domain: p.domain, liveDir: liveDir(p.domain), hstsMaxAge: p.hstsMaxAge, serverConf: serverSnippet, appConf: appSnippet,
        rejectHandshake: rejectsHandshake(facts.get(nginxVersionFact)),
      }), {
        ...checked,
        whyMissing: `nginx does not serve ${p.domain} over TLS yet`,
        whyDiffers: `${tlsSitePath} differs from the wanted TLS server`,
      }),
      link(tlsSiteLink, tlsSitePath, checked),
      // Only once HTTPS is served: the HTTP site's `location /` then redirects there.
      directory(redirectDir),
      file(redirectSnippet, templates.render('certbot/https-redirect.conf', { domain: p.domain }), {
        ...checked,
        whyMissing: `plain HTTP is not redirected to https://${p.domain} yet`,
        whyDiffers: `${redirectSnippet} differs from the wanted redirect to HTTPS`,
      }),
      file(deployHookPath, templates.render('certbot/deploy-hook', {}), { mode: 0o755, whyMissing: 'nothing reloads nginx after a renewal yet' }),
      dropIn,
      command('certbot-daemon-reload', dropIn.plan(facts).length ? 'systemd reads the changed certbot.service drop-in' : null, daemonReload),
      service('certbot.timer'),
    ];
  },

  converged: (p) => `${p.domain} has a certificate from ${wantedServer(p)} valid for more than ${renewWithinDays} days, served by nginx; renewal timer active`,

  async beforeApply(ctx, p) {
    // The HTTPS site includes the nginx step's snippets, and the challenge needs its HTTP site.
    const nginxSite = await ctx.run({ argv: ['test', '-f', serverSnippet, '-a', '-f', appSnippet] });
    if (!nginxSite.ok) throw new ConfigError(`certbot: ${serverSnippet} and ${appSnippet} are missing on ${ctx.target}: select the nginx step too (it serves the ACME challenge and what HTTPS serves)`);
    if (!p.caBundle) return;
    const check = await ctx.run({ argv: ['test', '-r', p.caBundle] });
    if (!check.ok) throw new ConfigError(`certbot: caBundle ${p.caBundle} is not a readable file on ${ctx.target}`);
  },

  /** systemd must read the drop-in again once the engine has put the old one back. */
  rollback(applied): Action[] {
    const touched = applied.some((a) => (a.kind === 'put' || a.kind === 'remove') && a.path === caDropInPath);
    return touched ? [{ kind: 'run', cmd: daemonReload, why: 'systemd reads the restored certbot.service drop-in' }] : [];
  },
});
