import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import { renderArgv } from '../../../src/core/quote.js';
import { directoryFact, fileFact, linkFact, serviceFact, type FactRequest } from '../../../src/facts/state.js';
import {
  caDropInPath, certbot, certificateFact, certonlyCmd, deployHookPath, nginxVersionFact, parseCertificate, parseNginxVersion, rejectsHandshake, renewalConf, renewalServer, tlsSiteLink, tlsSitePath,
} from '../../../src/steps/certbot.js';
import { appSnippet, redirectDir, redirectSnippet, serverSnippet } from '../../../src/steps/nginx-shared.js';
import { planStep, servedPorts } from '../../../src/steps/plan.js';
import { ctx, planOf, present } from './facts-of.js';

const pebble = 'https://10.213.0.1:14000/dir';
const caBundle = '/usr/local/share/zanuri-test/pebble-ca.pem';
const params = certbot.parseParams({ domain: 'web.example.org', email: 'ops@example.org', server: pebble, caBundle });
const nginxTest = { argv: ['nginx', '-t', '-q'] };
const reload = [{ unit: 'nginx.service', op: 'reload' }];

/** `openssl x509 -noout -ext subjectAltName` on a Pebble certificate (OpenSSL 3.0.x, Debian 12). */
const san = 'X509v3 Subject Alternative Name: critical\n    DNS:web.example.org\n';
/** `nginx -v` (it writes to stderr; the fact reads 2>&1) on Debian 12 and on Ubuntu 22.04. */
const debianNginx = 'nginx version: nginx/1.22.1\n';
const jammyNginx = 'nginx version: nginx/1.18.0 (Ubuntu)\n';
/** The lines certbot 2.1 writes in /etc/letsencrypt/renewal/<name>.conf that this step reads. */
const renewal = (server: string): string => `# renew_before_expiry = 30 days\nversion = 2.1.0\narchive_dir = /etc/letsencrypt/archive/web.example.org\n\n[renewalparams]\naccount = 0123\nauthenticator = webroot\nwebroot_path = /var/www/zanuri-acme,\nserver = ${server}\n`;

/** What the step writes on a bare host (every fact parses empty output), by path. */
const bare = { get: <T>(request: FactRequest<T>): T => request.parse('') };
const written = (p: unknown): Map<string, string> => new Map(planStep(certbot, bare, p, ctx).actions
  .flatMap((a) => (a.kind === 'put' ? [[a.path, String(a.content)] as [string, string]] : [])));
const wanted = written(params);
const tlsSite = wanted.get(tlsSitePath) ?? '';
const hook = wanted.get(deployHookPath) ?? '';
const redirect = wanted.get(redirectSnippet) ?? '';
const dropIn = wanted.get(caDropInPath) ?? '';

type Entries = Parameters<typeof planOf>[1];
function host(o: { cert?: string; server?: string | null; site?: string | null; linked?: boolean; redirect?: string | null; hook?: string | null; dropIn?: string | null; timer?: string; nginx?: string } = {}): Entries {
  const text = (value: string | null | undefined, fallback: string, mode = '644'): string => {
    const t = value === undefined ? fallback : value;
    return t === null ? 'absent' : present(t, mode);
  };
  return [
    [certificateFact('web.example.org'), o.cert ?? `valid\n${san}`],
    [fileFact(renewalConf('web.example.org')), o.server === null ? 'absent' : present(renewal(o.server ?? pebble))],
    [nginxVersionFact, o.nginx ?? debianNginx],
    [fileFact(tlsSitePath), text(o.site, tlsSite)],
    [linkFact(tlsSiteLink), o.linked === false ? 'none' : `link\n${tlsSitePath}`],
    [directoryFact(redirectDir), o.redirect === null ? 'absent' : 'dir 755 root root'],
    [fileFact(redirectSnippet), text(o.redirect, redirect)],
    [fileFact(deployHookPath), text(o.hook, hook, '755')],
    [fileFact(caDropInPath), text(o.dropIn, dropIn)],
    [serviceFact('certbot.timer'), o.timer ?? 'enabled\nactive'],
  ];
}
const kinds = (actions: readonly Action[]): string[] => actions.map((a) => `${a.kind} ${'path' in a ? a.path : 'unit' in a ? `${a.unit} ${a.op}` : a.kind === 'run' ? a.cmd.argv.slice(0, 2).join(' ') : ''}`);

describe('certbot', () => {
  it('on a fresh host: certonly --webroot against the ACME server, then the TLS site written and linked (each checked by nginx -t), the hook, the drop-in and the timer', () => {
    const plan = planOf(certbot, host({ cert: 'absent\n', server: null, site: null, linked: false, redirect: null, hook: null, dropIn: null, timer: 'disabled\ninactive' }), params);
    expect(kinds(plan.actions)).toEqual([
      'run env REQUESTS_CA_BUNDLE=/usr/local/share/zanuri-test/pebble-ca.pem', `put ${tlsSitePath}`, `link ${tlsSiteLink}`, `directory ${redirectDir}`, `put ${redirectSnippet}`,
      `put ${deployHookPath}`, `put ${caDropInPath}`, 'run systemctl daemon-reload', 'service certbot.timer enable-now',
    ]);
    expect(plan.actions[0]).toMatchObject({
      why: 'no certificate for web.example.org yet', notify: reload,
      cmd: { argv: ['env', `REQUESTS_CA_BUNDLE=${caBundle}`, 'certbot', 'certonly', '--webroot', '-w', '/var/www/zanuri-acme',
        '-d', 'web.example.org', '--cert-name', 'web.example.org', '--non-interactive', '--agree-tos', '-m', 'ops@example.org', '--no-eff-email', '--server', pebble] },
    });
    expect(plan.actions[1]).toMatchObject({ mode: 0o644, owner: 'root', group: 'root', validateInPlace: nginxTest, notify: reload, source: 'template certbot/tls-site.conf', why: 'nginx does not serve web.example.org over TLS yet' });
    expect(plan.actions[2]).toMatchObject({ target: tlsSitePath, before: null, validateInPlace: nginxTest, notify: reload });
    expect(plan.actions[4]).toMatchObject({ mode: 0o644, validateInPlace: nginxTest, notify: reload, source: 'template certbot/https-redirect.conf', why: 'plain HTTP is not redirected to https://web.example.org yet' });
    expect(plan.actions[5]).toMatchObject({ mode: 0o755, owner: 'root', content: '#!/bin/sh\n# Managed by zanuri (certbot): nginx picks up a renewed certificate.\nset -e\nnginx -t -q\nsystemctl reload nginx.service\n' });
    expect(plan.actions[6]).toMatchObject({ mode: 0o644, content: expect.stringContaining(`\n[Service]\nEnvironment=REQUESTS_CA_BUNDLE=${caBundle}\n`) });
    expect(plan.actions[7]).toMatchObject({ why: 'systemd reads the changed certbot.service drop-in' });
  });

  it('serves over TLS what the nginx step serves over HTTP: its server snippet (/health, ACME, headers) and its application snippet, with HSTS', () => {
    const [reject, site] = tlsSite.split(/\n(?=server \{)/).filter((b) => b.includes('server {'));
    expect(site).toContain('    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n    server_name web.example.org;\n');
    expect(site).toContain('ssl_certificate /etc/letsencrypt/live/web.example.org/fullchain.pem;\n    ssl_certificate_key /etc/letsencrypt/live/web.example.org/privkey.pem;\n');
    expect(site).toContain(`    add_header Strict-Transport-Security "max-age=63072000" always;\n    include ${serverSnippet};\n\n    location / {\n        include ${appSnippet};\n    }\n}\n`);
    expect(site).not.toContain('return 404');
    // Mozilla intermediate: TLS 1.2 and 1.3, ECDHE with AEAD ciphers only, no session tickets; no OCSP stapling.
    expect(site).toContain('ssl_protocols TLSv1.2 TLSv1.3;\n');
    expect(site).toMatch(/ssl_ciphers (?:ECDHE-(?:ECDSA|RSA)-(?:AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305):?){6};\n/);
    expect(site).toContain('ssl_session_tickets off;\n');
    expect(site).not.toContain('ssl_stapling');
    // Any other name, or no SNI: the handshake is refused (the default server on 443 has no certificate).
    expect(reject).toContain('listen 443 ssl http2 default_server;\n    listen [::]:443 ssl http2 default_server;\n    server_name _;\n');
    expect(reject).toContain('ssl_reject_handshake on;\n');
    expect(reject).not.toContain('ssl_certificate');
    expect(reject).not.toContain('include');
    expect(written(certbot.parseParams({ domain: 'web.example.org', email: 'ops@example.org', hstsMaxAge: 0 })).get(tlsSitePath)).toContain('"max-age=0" always;');
  });

  it('on an nginx without ssl_reject_handshake (before 1.19.4, Ubuntu 22.04), answers other names with 444 after the handshake instead', () => {
    const plan = planOf(certbot, host({ nginx: jammyNginx }), params);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'put', path: tlsSitePath, validateInPlace: nginxTest, why: `${tlsSitePath} differs from the wanted TLS server` })]);
    const old = String((plan.actions[0] as { content: string }).content);
    const [fallback, site] = old.split(/\n(?=server \{)/).filter((b) => b.includes('server {'));
    expect(old).not.toMatch(/^\s*ssl_reject_handshake/m);
    expect(tlsSite).toMatch(/^\s*ssl_reject_handshake on;/m);
    expect(fallback).toContain('listen 443 ssl http2 default_server;');
    expect(fallback).toContain('ssl_certificate /etc/letsencrypt/live/web.example.org/fullchain.pem;');
    expect(fallback).toMatch(/return 444;\n\}/);
    expect(fallback).not.toContain('include');
    expect(site).toContain(tlsSite.slice(tlsSite.indexOf('    listen 443 ssl http2;\n')));
    expect(parseNginxVersion(debianNginx)).toEqual([1, 22, 1]);
    expect(parseNginxVersion(jammyNginx)).toEqual([1, 18, 0]);
    expect(parseNginxVersion('sh: 1: nginx: not found\n')).toBeNull();
    expect(parseNginxVersion('')).toBeNull();
    expect([[1, 19, 3], [1, 19, 4], [1, 20, 0], [2, 0, 0], [0, 99, 99], null].map((v) => rejectsHandshake(v as [number, number, number] | null))).toEqual([false, true, true, true, false, true]);
  });

  it('redirects plain HTTP to https://DOMAIN from a snippet the nginx step\'s site includes in `location /` only, so /health and ACME stay on HTTP', () => {
    expect(redirect).toMatch(/\nreturn 301 https:\/\/web\.example\.org\$request_uri;\n$/);
    expect(redirect.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['return 301 https://web.example.org$request_uri;']);
    const drifted = planOf(certbot, host({ redirect: redirect.replace('301', '302') }), params);
    expect(drifted.actions).toEqual([expect.objectContaining({ kind: 'put', path: redirectSnippet, validateInPlace: nginxTest, notify: reload, why: `${redirectSnippet} differs from the wanted redirect to HTTPS` })]);
  });

  it('declares 443 and 80 as public, so the firewall keeps HTTPS, the redirect and HTTP-01 challenges open', () => {
    expect(servedPorts([{ step: certbot, params }]).map((s) => `${s.port}/${s.protocol} ${s.access} ${s.step}`)).toEqual(['443/tcp public certbot', '80/tcp public certbot']);
  });

  it('leaves a converged host alone and says why', () => {
    expect(planOf(certbot, host(), params)).toEqual({
      actions: [], noop: `web.example.org has a certificate from ${pebble} valid for more than 30 days, served by nginx; renewal timer active`,
    });
  });

  it('renews a certificate that ends within 30 days, forcing certbot, and reloads nginx afterwards', () => {
    const plan = planOf(certbot, host({ cert: `expiring\n${san}` }), params);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'run', why: 'the certificate for web.example.org ends within 30 days', notify: reload })]);
    expect(plan.actions[0]).toMatchObject({ cmd: { argv: expect.arrayContaining(['--force-renewal']) } });
  });

  it('replaces a certificate for other names or from another ACME server', () => {
    const other = planOf(certbot, host({ cert: 'valid\nX509v3 Subject Alternative Name: \n    DNS:old.example.org, DNS:www.old.example.org\n' }), params);
    expect(other.actions[0]).toMatchObject({ why: 'the certificate does not cover web.example.org (it covers old.example.org, www.old.example.org)' });
    const staging = planOf(certbot, host({ server: 'https://acme-staging-v02.api.letsencrypt.org/directory' }), params);
    expect(staging.actions[0]).toMatchObject({ why: `the certificate comes from https://acme-staging-v02.api.letsencrypt.org/directory, not ${pebble}` });
  });

  it('puts back a drifted TLS site and hook, and starts a stopped timer', () => {
    const plan = planOf(certbot, host({ site: tlsSite.replace('TLSv1.2 ', ''), hook: '#!/bin/sh\n', timer: 'enabled\ninactive' }), params);
    expect(kinds(plan.actions)).toEqual([`put ${tlsSitePath}`, `put ${deployHookPath}`, 'service certbot.timer start']);
    expect(plan.actions[0]).toMatchObject({ why: `${tlsSitePath} differs from the wanted TLS server` });
  });

  it('reloads systemd only when the drop-in changes, and removes it once no caBundle is configured', () => {
    const plain = certbot.parseParams({ domain: 'web.example.org', email: 'ops@example.org', server: pebble });
    expect(kinds(planOf(certbot, host({ dropIn: dropIn.replace('pebble', 'other') }), params).actions)).toEqual([`put ${caDropInPath}`, 'run systemctl daemon-reload']);
    expect(kinds(planOf(certbot, host(), plain).actions)).toEqual([`remove ${caDropInPath}`, 'run systemctl daemon-reload']);
    expect(planOf(certbot, host({ dropIn: null }), plain).actions).toEqual([]);
  });

  it('reloads systemd after a rollback has put the drop-in back, and not otherwise', () => {
    const [put] = planOf(certbot, host({ dropIn: null }), params).actions;
    expect(certbot.rollback?.([put as Action], params)).toEqual([expect.objectContaining({ kind: 'run', cmd: { argv: ['systemctl', 'daemon-reload'] } })]);
    const [site] = planOf(certbot, host({ site: null }), params).actions;
    expect(certbot.rollback?.([site as Action], params)).toEqual([]);
  });

  it('uses --staging for Let\'s Encrypt staging and the production server by default', () => {
    const staging = certbot.parseParams({ domain: 'web.example.org', email: 'ops@example.org', staging: true });
    expect(certonlyCmd(staging, false).argv).toContain('--staging');
    expect(certonlyCmd(staging, false).argv).not.toContain('--server');
    const prod = certbot.parseParams({ domain: 'web.example.org', email: 'ops@example.org' });
    expect(renderArgv(certonlyCmd(prod, false).argv)).toContain('--server https://acme-v02.api.letsencrypt.org/directory');
    expect(certonlyCmd(prod, false).argv[1]).toBe('certbot');
  });

  it('parses certificate facts and renewal files', () => {
    expect(parseCertificate('absent\n')).toEqual({ status: 'absent', names: [] });
    expect(parseCertificate('')).toEqual({ status: 'absent', names: [] });
    expect(parseCertificate(`valid\n${san}`)).toEqual({ status: 'valid', names: ['web.example.org'] });
    expect(parseCertificate('expiring\n')).toEqual({ status: 'expiring', names: [] });
    expect(renewalServer(renewal(pebble))).toBe(pebble);
    expect(renewalServer('version = 2.1.0\n')).toBeNull();
    expect(renewalServer(null)).toBeNull();
  });

  it('refuses hostile and malformed values before any connection', () => {
    const base = { domain: 'web.example.org', email: 'ops@example.org' };
    for (const bad of ['a;reboot', '$(id)', 'web.example.org\nreboot', "web'.org", 'Web.Example.org', '*.example.org', 'localhost', '']) {
      expect(() => certbot.parseParams({ ...base, domain: bad }), JSON.stringify(bad)).toThrow(/domain must be a DNS name/);
    }
    expect(() => certbot.parseParams({ email: 'ops@example.org' })).toThrow(/domain is required/);
    expect(() => certbot.parseParams({ ...base, email: 'x@y.org; reboot' })).toThrow(/email must be an email address/);
    expect(() => certbot.parseParams({ ...base, server: 'https://x.org/dir --staging' })).toThrow(/server must be an http\(s\) URL/);
    expect(() => certbot.parseParams({ ...base, caBundle: '/etc/../root/key' })).toThrow(/caBundle must be an absolute path/);
    expect(() => certbot.parseParams({ ...base, staging: 'yes' })).toThrow(/staging must be true or false/);
    expect(() => certbot.parseParams({ ...base, staging: true, server: pebble })).toThrow(/do not give server too/);
    for (const bad of [-1, 63072001, 1.5, '1d']) {
      expect(() => certbot.parseParams({ ...base, hstsMaxAge: bad }), JSON.stringify(bad)).toThrow(/hstsMaxAge must be seconds from 0 to 63072000/);
    }
  });
});
