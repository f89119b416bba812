import { ConfigError } from '../core/errors.js';
import { plan, type Action } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { Cmd } from '../core/types.js';
import { commandFact, fileFact, linkFact, serviceFact, type FactRequest } from '../facts/state.js';
import { boolean, domainName, email, object, optionalString, string, url } from './params.js';
import type { Step } from './types.js';
import { sharedLocations } from './nginx-site.js';

/**
 * A certificate for one domain from an ACME server (Let's Encrypt by default), obtained with
 * `certbot certonly --webroot`: the nginx step's site serves the HTTP-01 challenge from the webroot.
 * certbot's nginx installer is never used (it rewrites nginx's configuration, which the nginx step
 * would see as drift on every run); this step writes its own TLS server block instead, plus a
 * deploy hook that reloads nginx after a renewal, and keeps certbot.timer enabled and active.
 */
export interface CertbotParams {
  domain: string;
  email: string;
  /** ACME directory URL (ignored when staging). */
  server: string;
  /** Use Let's Encrypt's staging directory. */
  staging: boolean;
  /** A CA bundle on the host that certbot must trust for the ACME server (a private ACME CA). */
  caBundle: string | null;
  webroot: string;
}

const id = 'certbot';
export const letsEncrypt = 'https://acme-v02.api.letsencrypt.org/directory';
export const letsEncryptStaging = 'https://acme-staging-v02.api.letsencrypt.org/directory';
export const tlsSitePath = '/etc/nginx/sites-available/zanuri-tls';
export const tlsSiteLink = '/etc/nginx/sites-enabled/zanuri-tls';
export const deployHookPath = '/etc/letsencrypt/renewal-hooks/deploy/zanuri-reload-nginx';
/** certbot.timer runs certbot.service: a private ACME CA must be trusted there too, or renewals fail. */
export const caDropInPath = '/etc/systemd/system/certbot.service.d/zanuri-ca-bundle.conf';
export const liveDir = (domain: string): string => `/etc/letsencrypt/live/${domain}`;
export const renewalConf = (domain: string): string => `/etc/letsencrypt/renewal/${domain}.conf`;
const timer = 'certbot.timer';
const nginxUnit = 'nginx.service';
/** Renew when the certificate ends within this many days (certbot's own renewal threshold). */
export const renewWithinDays = 30;
const absolutePath = /^(?:\/[A-Za-z0-9_][A-Za-z0-9._-]*)+$/;
const checkNginx: Cmd = { argv: ['nginx', '-t', '-q'] };

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

/** The `server = URL` line of a certbot renewal configuration; null when the file or line is missing. */
export function renewalServer(content: string | null): string | null {
  if (content === null) return null;
  return /^server\s*=\s*(\S+)\s*$/m.exec(content)?.[1] ?? null;
}

export function renderTlsSite(p: CertbotParams): string {
  const dir = liveDir(p.domain);
  return [
    '# Managed by zanuri (certbot); edits here are overwritten.',
    'server {',
    '    listen 443 ssl;',
    '    listen [::]:443 ssl;',
    `    server_name ${p.domain};`,
    '',
    `    ssl_certificate ${dir}/fullchain.pem;`,
    `    ssl_certificate_key ${dir}/privkey.pem;`,
    '    ssl_protocols TLSv1.2 TLSv1.3;',
    '    ssl_session_cache shared:zanuri_tls:10m;',
    '    ssl_session_timeout 1d;',
    '',
    ...sharedLocations(p.webroot),
    '',
    '    location / {',
    '        return 404;',
    '    }',
    '}',
    '',
  ].join('\n');
}

export const deployHook = [
  '#!/bin/sh',
  '# Managed by zanuri (certbot): nginx picks up a renewed certificate.',
  'set -e',
  'nginx -t -q',
  'systemctl reload nginx.service',
  '',
].join('\n');

export const renderCaDropIn = (caBundle: string): string =>
  `# Managed by zanuri (certbot): renewals trust the ACME server's CA.\n[Service]\nEnvironment=REQUESTS_CA_BUNDLE=${caBundle}\n`;

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


export const certbot: Step<CertbotParams> = {
  id,
  title: 'TLS certificate (certbot)',
  after: ['nginx'],

  parseParams(raw) {
    const p = object(raw, id, ['domain', 'email', 'server', 'staging', 'caBundle', 'webroot']);
    const staging = boolean(p, id, 'staging', false);
    if (staging && p['server'] !== undefined) throw new ConfigError(`${id}: staging uses Let's Encrypt's staging server; do not give server too`);
    return {
      domain: string(p, id, 'domain', domainName, 'a DNS name (lower case, no wildcard)'),
      email: string(p, id, 'email', email, 'an email address'),
      server: string(p, id, 'server', url, 'an http(s) URL of an ACME directory', letsEncrypt),
      staging,
      caBundle: optionalString(p, id, 'caBundle', absolutePath, 'an absolute path') ?? null,
      webroot: string(p, id, 'webroot', absolutePath, 'an absolute path', '/var/www/zanuri-acme'),
    };
  },

  packages: () => ['certbot', 'nginx', 'openssl'],

  facts: (p) => [certificateFact(p.domain), fileFact(renewalConf(p.domain)), fileFact(tlsSitePath), linkFact(tlsSiteLink), fileFact(deployHookPath), fileFact(caDropInPath), serviceFact(timer), serviceFact(nginxUnit)],

  plan(facts, p) {
    const actions: Action[] = [];
    const cert = facts.get(certificateFact(p.domain));
    const server = renewalServer(facts.get(fileFact(renewalConf(p.domain))).content);
    const site = facts.get(fileFact(tlsSitePath));
    const hook = facts.get(fileFact(deployHookPath));
    const timerState = facts.get(serviceFact(timer));
    const nginxRunning = facts.get(serviceFact(nginxUnit)).active === 'active';

    const certWhy = cert.status === 'absent' ? `no certificate for ${p.domain} yet`
      : cert.status === 'expiring' ? `the certificate for ${p.domain} ends within ${renewWithinDays} days`
        : !cert.names.includes(p.domain) ? `the certificate does not cover ${p.domain} (it covers ${cert.names.join(', ') || 'no DNS name'})`
          : server !== wantedServer(p) ? `the certificate comes from ${server ?? 'an unknown server'}, not ${wantedServer(p)}`
            : null;
    if (certWhy) actions.push({ kind: 'run', cmd: certonlyCmd(p, cert.status !== 'absent'), why: certWhy });

    const wanted = renderTlsSite(p);
    const siteCurrent = site.content === wanted && site.mode === '644' && site.owner === 'root' && site.group === 'root';
    const link = facts.get(linkFact(tlsSiteLink));
    const linked = link === tlsSitePath;
    // Linked before the file is written, so that `nginx -t` after the write checks the site as enabled.
    if (!linked) actions.push({ kind: 'link', path: tlsSiteLink, target: tlsSitePath, before: link, why: `${tlsSiteLink} does not link to ${tlsSitePath}` });
    if (!siteCurrent) {
      actions.push({
        kind: 'put', path: tlsSitePath, content: wanted, mode: 0o644, owner: 'root', group: 'root', before: site.content,
        validateInPlace: checkNginx, notify: [{ unit: nginxUnit, op: nginxRunning ? 'reload' : 'restart' }],
        why: site.exists ? `${tlsSitePath} differs from the wanted TLS server` : `nginx does not serve ${p.domain} over TLS yet`,
      });
    } else if (!linked || certWhy) {
      // No file write to validate and notify: check and reload here, once (a new certificate needs the reload too).
      actions.push({ kind: 'run', cmd: checkNginx, why: 'check the configuration before nginx reloads it' });
      actions.push({ kind: 'service', unit: nginxUnit, op: nginxRunning ? 'reload' : 'restart', why: certWhy ? 'nginx serves the new certificate' : 'the enabled sites changed' });
    }
    if (hook.content !== deployHook || hook.mode !== '755' || hook.owner !== 'root') {
      actions.push({ kind: 'put', path: deployHookPath, content: deployHook, mode: 0o755, owner: 'root', group: 'root', before: hook.content, why: hook.exists ? `${deployHookPath} differs` : 'nothing reloads nginx after a renewal yet' });
    }
    const dropIn = facts.get(fileFact(caDropInPath));
    const daemonReload: Action = { kind: 'run', cmd: { argv: ['systemctl', 'daemon-reload'] }, why: 'systemd reads the changed certbot.service drop-in' };
    if (p.caBundle && (dropIn.content !== renderCaDropIn(p.caBundle) || dropIn.mode !== '644')) {
      actions.push({ kind: 'put', path: caDropInPath, content: renderCaDropIn(p.caBundle), mode: 0o644, owner: 'root', group: 'root', before: dropIn.content,
        why: `renewals by certbot.timer must trust ${p.caBundle} too` }, daemonReload);
    } else if (!p.caBundle && dropIn.exists && dropIn.content !== null) {
      actions.push({ kind: 'remove', path: caDropInPath, before: dropIn.content, why: 'no caBundle is configured any more' }, daemonReload);
    }
    if (timerState.enabled !== 'enabled' || timerState.active !== 'active') {
      actions.push({ kind: 'service', unit: timer, op: 'enable-now', why: `the renewal timer is ${timerState.enabled} and ${timerState.active}` });
    }
    return plan(actions, `${p.domain} has a certificate from ${wantedServer(p)} valid for more than ${renewWithinDays} days, served by nginx; renewal timer active`);
  },

  async beforeApply(ctx, p) {
    if (!p.caBundle) return;
    const check = await ctx.run({ argv: ['test', '-r', p.caBundle] });
    if (!check.ok) throw new ConfigError(`${id}: caBundle ${p.caBundle} is not a readable file on ${ctx.target}`);
  },

  rollback(applied) {
    const undo: Action[] = [];
    if (applied.some((a) => (a.kind === 'put' || a.kind === 'remove') && a.path === caDropInPath)) {
      undo.push({ kind: 'run', cmd: { argv: ['systemctl', 'daemon-reload'] }, why: 'systemd reads the restored certbot.service drop-in' });
    }
    return undo;
  },
};
