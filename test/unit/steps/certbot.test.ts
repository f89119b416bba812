import { describe, expect, it } from 'vitest';
import { renderArgv } from '../../../src/core/quote.js';
import { commandFact, fileFact, linkFact, serviceFact } from '../../../src/facts/state.js';
import {
  caDropInPath, certbot, certificateFact, certonlyCmd, renderCaDropIn, deployHook, deployHookPath, parseCertificate, renderTlsSite, renewalConf, renewalServer, tlsSiteLink, tlsSitePath,
} from '../../../src/steps/certbot.js';
import { b64, factsOf } from './facts-of.js';

const info = { loginUser: 'root', sshPort: 22, local: false };
const pebble = 'https://10.213.0.1:14000/dir';
const params = certbot.parseParams({ domain: 'web.example.org', email: 'ops@example.org', server: pebble, caBundle: '/usr/local/share/zanuri-test/pebble-ca.pem' });

/** `openssl x509 -noout -ext subjectAltName` on a Pebble certificate (OpenSSL 3.0.x, Debian 12). */
const san = 'X509v3 Subject Alternative Name: critical\n    DNS:web.example.org\n';
/** The lines certbot 2.1 writes in /etc/letsencrypt/renewal/<name>.conf that this step reads. */
const renewal = (server: string): string => `# renew_before_expiry = 30 days\nversion = 2.1.0\narchive_dir = /etc/letsencrypt/archive/web.example.org\n\n[renewalparams]\naccount = 0123\nauthenticator = webroot\nwebroot_path = /var/www/zanuri-acme,\nserver = ${server}\n`;

function host(o: { cert?: string; server?: string | null; site?: string | null; linked?: boolean; hook?: string | null; dropIn?: string | null; timer?: string; nginx?: string }): ReturnType<typeof factsOf> {
  const dropIn = o.dropIn === undefined ? renderCaDropIn('/usr/local/share/zanuri-test/pebble-ca.pem') : o.dropIn;
  const site = o.site === undefined ? renderTlsSite(params) : o.site;
  const hook = o.hook === undefined ? deployHook : o.hook;
  const server = o.server === undefined ? pebble : o.server;
  return factsOf([
    [certificateFact('web.example.org'), o.cert ?? `valid\n${san}`],
    [fileFact(renewalConf('web.example.org')), server === null ? 'absent' : `present 644 root root\n${b64(renewal(server))}`],
    [fileFact(tlsSitePath), site === null ? 'absent' : `present 644 root root\n${b64(site)}`],
    [linkFact(tlsSiteLink), o.linked === false ? 'none' : `link\n${tlsSitePath}`],
    [fileFact(deployHookPath), hook === null ? 'absent' : `present 755 root root\n${b64(hook)}`],
    [fileFact(caDropInPath), dropIn === null ? 'absent' : `present 644 root root\n${b64(dropIn)}`],
    [serviceFact('certbot.timer'), o.timer ?? 'enabled\nactive'],
    [serviceFact('nginx.service'), o.nginx ?? 'enabled\nactive'],
  ]);
}

describe('certbot', () => {
  it('on a fresh host: certonly --webroot against the ACME server, then the TLS site (nginx -t, one reload), the deploy hook and the timer', () => {
    const plan = certbot.plan(host({ cert: 'absent\n', server: null, site: null, linked: false, hook: null, dropIn: null, timer: 'disabled\ninactive' }), params, info);
    expect(plan.actions.map((a) => a.kind)).toEqual(['run', 'link', 'put', 'put', 'put', 'run', 'service']);
    expect(plan.actions[0]).toMatchObject({
      why: 'no certificate for web.example.org yet',
      cmd: { argv: ['env', 'REQUESTS_CA_BUNDLE=/usr/local/share/zanuri-test/pebble-ca.pem', 'certbot', 'certonly', '--webroot', '-w', '/var/www/zanuri-acme',
        '-d', 'web.example.org', '--cert-name', 'web.example.org', '--non-interactive', '--agree-tos', '-m', 'ops@example.org', '--no-eff-email', '--server', pebble] },
    });
    expect(plan.actions[1]).toMatchObject({ kind: 'link', path: tlsSiteLink, target: tlsSitePath, before: null });
    expect(plan.actions[2]).toMatchObject({ path: tlsSitePath, validateInPlace: { argv: ['nginx', '-t', '-q'] }, notify: [{ unit: 'nginx.service', op: 'reload' }] });
    const site = String((plan.actions[2] as { content: string }).content);
    expect(site).toContain('ssl_certificate /etc/letsencrypt/live/web.example.org/fullchain.pem;');
    expect(site).toContain('ssl_certificate_key /etc/letsencrypt/live/web.example.org/privkey.pem;');
    expect(site).toContain('server_name web.example.org;');
    expect(plan.actions[3]).toMatchObject({ path: '/etc/letsencrypt/renewal-hooks/deploy/zanuri-reload-nginx', mode: 0o755 });
    expect(plan.actions[4]).toMatchObject({ path: '/etc/systemd/system/certbot.service.d/zanuri-ca-bundle.conf', content: expect.stringContaining('Environment=REQUESTS_CA_BUNDLE=/usr/local/share/zanuri-test/pebble-ca.pem\n') });
    expect(plan.actions[5]).toMatchObject({ cmd: { argv: ['systemctl', 'daemon-reload'] } });
    expect(plan.actions[6]).toMatchObject({ unit: 'certbot.timer', op: 'enable-now' });
  });

  it('leaves a converged host alone and says why', () => {
    expect(certbot.plan(host({}), params, info)).toEqual({
      actions: [], noop: `web.example.org has a certificate from ${pebble} valid for more than 30 days, served by nginx; renewal timer active`,
    });
  });

  it('renews a certificate that ends within 30 days, forcing certbot, and reloads nginx after checking it', () => {
    const plan = certbot.plan(host({ cert: `expiring\n${san}` }), params, info);
    expect(plan.actions.map((a) => a.kind)).toEqual(['run', 'run', 'service']);
    expect(plan.actions[0]).toMatchObject({ why: 'the certificate for web.example.org ends within 30 days' });
    expect(plan.actions[0]).toMatchObject({ cmd: { argv: expect.arrayContaining(['--force-renewal']) } });
    expect(plan.actions[1]).toMatchObject({ cmd: { argv: ['nginx', '-t', '-q'] } });
    expect(plan.actions[2]).toMatchObject({ unit: 'nginx.service', op: 'reload' });
  });

  it('replaces a certificate for other names or from another ACME server', () => {
    const other = certbot.plan(host({ cert: 'valid\nX509v3 Subject Alternative Name: \n    DNS:old.example.org, DNS:www.old.example.org\n' }), params, info);
    expect(other.actions[0]).toMatchObject({ why: 'the certificate does not cover web.example.org (it covers old.example.org, www.old.example.org)' });
    const staging = certbot.plan(host({ server: 'https://acme-staging-v02.api.letsencrypt.org/directory' }), params, info);
    expect(staging.actions[0]).toMatchObject({ why: expect.stringMatching(/comes from https:\/\/acme-staging-v02/) });
  });

  it('puts back a drifted TLS site and hook, and starts a stopped timer', () => {
    const plan = certbot.plan(host({ site: renderTlsSite(params).replace('TLSv1.2 ', ''), hook: '#!/bin/sh\n', timer: 'enabled\ninactive' }), params, info);
    expect(plan.actions.map((a) => a.kind)).toEqual(['put', 'put', 'service']);
    expect(plan.actions[0]).toMatchObject({ why: expect.stringMatching(/differs from the wanted TLS server/) });
  });

  it('removes the renewal CA drop-in once no caBundle is configured', () => {
    const plain = certbot.parseParams({ domain: 'web.example.org', email: 'ops@example.org', server: pebble });
    const plan = certbot.plan(host({}), plain, info);
    expect(plan.actions.map((a) => a.kind)).toEqual(['remove', 'run']);
    expect(certbot.plan(host({ dropIn: null }), plain, info).actions).toEqual([]);
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
    expect(() => certbot.parseParams({ email: 'ops@example.org' })).toThrow(/domain must be a DNS name/);
    expect(() => certbot.parseParams({ ...base, email: 'x@y.org; reboot' })).toThrow(/email must be an email address/);
    expect(() => certbot.parseParams({ ...base, server: 'https://x.org/dir --staging' })).toThrow(/server must be an http\(s\) URL/);
    expect(() => certbot.parseParams({ ...base, caBundle: '/etc/../root/key' })).toThrow(/caBundle must be an absolute path/);
    expect(() => certbot.parseParams({ ...base, staging: 'yes' })).toThrow(/staging must be true or false/);
    expect(() => certbot.parseParams({ ...base, staging: true, server: pebble })).toThrow(/do not give server too/);
  });
});
