import { describe, expect, it } from 'vitest';
import { fileFact, linkFact, serviceFact } from '../../../src/facts/state.js';
import { challengeDirFact, defaultSiteLink, nginx, renderSite, siteLink, sitePath } from '../../../src/steps/nginx.js';
import { b64, factsOf } from './facts-of.js';

const info = { loginUser: 'root', sshPort: 22, local: false };
const params = nginx.parseParams({ serverName: 'web.example.org' });

/** Captured on Debian 12 right after `apt-get install nginx`. */
const debianDefault = '##\n# You should look at the following URL\'s in order to grasp a solid understanding\nserver {\n\tlisten 80 default_server;\n\tlisten [::]:80 default_server;\n\troot /var/www/html;\n}\n';

function host(o: { site?: string | null; mode?: string; link?: string | null; defaultSite?: boolean; dir?: boolean; service?: string }): ReturnType<typeof factsOf> {
  const site = o.site === undefined ? renderSite(params) : o.site;
  return factsOf([
    [fileFact(sitePath), site === null ? 'absent' : `present ${o.mode ?? '644'} root root\n${b64(site)}`],
    [linkFact(siteLink), o.link === null ? 'none' : `link\n${o.link ?? sitePath}`],
    [fileFact(defaultSiteLink), o.defaultSite ? `present 777 root root\n${b64(debianDefault)}` : 'absent'],
    [linkFact(defaultSiteLink), o.defaultSite ? 'link\n/etc/nginx/sites-available/default' : 'none'],
    [challengeDirFact('/var/www/zanuri-acme'), `\n@@rc=${o.dir === false ? 1 : 0}`],
    [serviceFact('nginx.service'), o.service ?? 'enabled\nactive'],
  ]);
}

describe('nginx', () => {
  it('on a fresh Debian nginx: makes the challenge dir, disables the default site, links and writes the site, validated by nginx -t, one reload', () => {
    const plan = nginx.plan(host({ site: null, link: null, defaultSite: true, dir: false }), params, info);
    expect(plan.actions.map((a) => a.kind)).toEqual(['run', 'link', 'link', 'put']);
    expect(plan.actions[0]).toMatchObject({ cmd: { argv: ['install', '-d', '-m', '755', '--', '/var/www/zanuri-acme', '/var/www/zanuri-acme/.well-known', '/var/www/zanuri-acme/.well-known/acme-challenge'] } });
    // Debian's default site is a link: it is unlinked, and a rollback links it again.
    expect(plan.actions[1]).toMatchObject({ kind: 'link', path: '/etc/nginx/sites-enabled/default', target: null, before: '/etc/nginx/sites-available/default' });
    expect(plan.actions[2]).toMatchObject({ kind: 'link', path: '/etc/nginx/sites-enabled/zanuri', target: '/etc/nginx/sites-available/zanuri', before: null });
    expect(plan.actions[3]).toMatchObject({
      kind: 'put', path: sitePath, mode: 0o644, before: null, validateInPlace: { argv: ['nginx', '-t', '-q'] }, notify: [{ unit: 'nginx.service', op: 'reload' }],
    });
    const site = String((plan.actions[3] as { content: string }).content);
    expect(site).toContain('server_name web.example.org;');
    expect(site).toMatch(/location = \/health \{[^}]*return 200 "ok\\n";/);
    expect(site).toMatch(/location \^~ \/\.well-known\/acme-challenge\/ \{\s*root \/var\/www\/zanuri-acme;/);
    expect(site).toContain('listen 80 default_server;');
  });

  it('leaves a converged host alone and says why', () => {
    expect(nginx.plan(host({}), params, info)).toEqual({ actions: [], noop: 'nginx serves the zanuri site (web.example.org) and is enabled and running' });
  });

  it('rewrites a drifted site and reloads; the link and the rest stay', () => {
    const plan = nginx.plan(host({ site: renderSite(params).replace('return 200', 'return 503') }), params, info);
    expect(plan.actions).toHaveLength(1);
    expect(plan.actions[0]).toMatchObject({ kind: 'put', why: expect.stringMatching(/differs from the wanted site/) });
    expect(nginx.plan(host({ mode: '666' }), params, info).actions[0]).toMatchObject({ kind: 'put' });
  });

  it('relinks a link that points elsewhere, and checks before it reloads when no file is written', () => {
    const plan = nginx.plan(host({ link: '/etc/nginx/sites-available/other' }), params, info);
    expect(plan.actions.map((a) => a.kind)).toEqual(['link', 'run', 'service']);
    expect(plan.actions[1]).toMatchObject({ cmd: { argv: ['nginx', '-t', '-q'] } });
    expect(plan.actions[2]).toMatchObject({ unit: 'nginx.service', op: 'reload' });
  });

  it('disables a re-enabled default site, checking and reloading once', () => {
    const plan = nginx.plan(host({ defaultSite: true }), params, info);
    expect(plan.actions.map((a) => a.kind)).toEqual(['link', 'run', 'service']);
  });

  it('enables and starts a stopped nginx (no reload of a stopped service)', () => {
    const plan = nginx.plan(host({ service: 'disabled\ninactive', link: null }), params, info);
    expect(plan.actions.map((a) => (a.kind === 'service' ? `${a.op}` : a.kind))).toEqual(['link', 'run', 'enable-now']);
  });

  it('renders an upstream or a static root for everything else', () => {
    expect(renderSite(nginx.parseParams({ upstream: '127.0.0.1:3000' }))).toContain('proxy_pass http://127.0.0.1:3000;');
    expect(renderSite(nginx.parseParams({ root: '/srv/www' }))).toContain('root /srv/www;');
    expect(renderSite(nginx.parseParams({}))).toContain('server_name _;');
  });

  it('refuses hostile and malformed values before any connection', () => {
    for (const bad of ['a;reboot', '$(id)', 'web.example.org\nx', 'web.example.org;', '"q"', 'Web.Example.org', '*.example.org', '', 'x']) {
      expect(() => nginx.parseParams({ serverName: bad }), JSON.stringify(bad)).toThrow(/serverName must be a DNS name/);
    }
    expect(() => nginx.parseParams({ root: '/srv/../etc' })).toThrow(/root must be an absolute path/);
    expect(() => nginx.parseParams({ root: '/srv/www; include /etc/shadow' })).toThrow(/root must be an absolute path/);
    expect(() => nginx.parseParams({ upstream: '127.0.0.1:80; return 200' })).toThrow(/upstream must be host:port/);
    expect(() => nginx.parseParams({ root: '/srv', upstream: 'app:80' })).toThrow(/not both/);
    expect(() => nginx.parseParams({ webroot: 'relative' })).toThrow(/webroot must be an absolute path/);
    expect(() => nginx.parseParams({ servername: 'x.org' })).toThrow(/unknown parameter "servername"/);
  });
});
