import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import { directoryFact, fileFact, linkFact, serviceFact, type FactRequest } from '../../../src/facts/state.js';
import { defaultSiteLink, nginx, siteLink, sitePath } from '../../../src/steps/nginx.js';
import { appSnippet, serverSnippet } from '../../../src/steps/nginx-shared.js';
import { planStep, servedPorts } from '../../../src/steps/plan.js';
import { ctx, planOf, present } from './facts-of.js';

const params = nginx.parseParams({ serverName: 'web.example.org' });
const webroot = '/var/www/zanuri-acme';
const dirs = [webroot, `${webroot}/.well-known`, `${webroot}/.well-known/acme-challenge`, '/etc/nginx/zanuri', '/etc/nginx/zanuri/http-redirect.d'];
const nginxTest = { argv: ['nginx', '-t', '-q'] };
const reload = [{ unit: 'nginx.service', op: 'reload' }];

/** A host with nothing on it: every fact parses empty output. */
const bare = { get: <T>(request: FactRequest<T>): T => request.parse('') };

/** Captured on Debian 12 right after `apt-get install nginx`. */
const debianDefault = '##\n# You should look at the following URL\'s in order to grasp a solid understanding\nserver {\n\tlisten 80 default_server;\n\tlisten [::]:80 default_server;\n\troot /var/www/html;\n}\n';

/** A file as the step renders it for these raw parameters (from a plan against a bare host). */
function renderedFor(raw: unknown, path = sitePath): string {
  const put = planStep(nginx, bare, nginx.parseParams(raw), ctx).actions.find((a) => a.kind === 'put' && a.path === path);
  return String((put as { content: string }).content);
}
const siteFor = (raw: unknown): string => renderedFor(raw, sitePath);
const serverFor = (raw: unknown): string => renderedFor(raw, serverSnippet);
const appFor = (raw: unknown): string => renderedFor(raw, appSnippet);

type Entries = Parameters<typeof planOf>[1];
function host(o: { site?: string | null; server?: string | null; app?: string | null; mode?: string; link?: string | null; defaultSite?: 'link' | 'file'; dirs?: boolean; service?: string } = {}): Entries {
  const site = o.site === undefined ? converged : o.site;
  const text = (value: string | null | undefined, fallback: string): string => {
    const t = value === undefined ? fallback : value;
    return t === null ? 'absent' : present(t);
  };
  return [
    ...dirs.map((d): Entries[number] => [directoryFact(d), o.dirs === false ? 'absent' : 'dir 755 root root']),
    [linkFact(defaultSiteLink), o.defaultSite === 'link' ? 'link\n/etc/nginx/sites-available/default' : 'none'],
    [fileFact(defaultSiteLink), o.defaultSite ? present(debianDefault) : 'absent'],
    [fileFact(serverSnippet), text(o.server, convergedServer)],
    [fileFact(appSnippet), text(o.app, convergedApp)],
    [fileFact(sitePath), site === null ? 'absent' : present(site, o.mode)],
    [linkFact(siteLink), o.link === null ? 'none' : `link\n${o.link ?? sitePath}`],
    [serviceFact('nginx.service'), o.service ?? 'enabled\nactive'],
  ];
}
const converged = siteFor({ serverName: 'web.example.org' });
const convergedServer = serverFor({ serverName: 'web.example.org' });
const convergedApp = appFor({ serverName: 'web.example.org' });
const kinds = (actions: readonly Action[]): string[] => actions.map((a) => `${a.kind} ${'path' in a ? a.path : 'unit' in a ? `${a.unit} ${a.op}` : ''}`);

describe('nginx', () => {
  it('on a fresh Debian nginx: makes the directories, unlinks the default site, writes the shared snippets, then the site, and only then links it, each checked by nginx -t', () => {
    const plan = planOf(nginx, host({ site: null, server: null, app: null, link: null, defaultSite: 'link', dirs: false }), params);
    expect(kinds(plan.actions)).toEqual([...dirs.map((d) => `directory ${d}`), `link ${defaultSiteLink}`, `put ${serverSnippet}`, `put ${appSnippet}`, `put ${sitePath}`, `link ${siteLink}`]);
    expect(plan.actions[2]).toMatchObject({ mode: 0o755, owner: 'root', why: `the ACME challenge directory ${webroot}/.well-known/acme-challenge does not exist` });
    // Debian's default site is a link: it is unlinked, and a rollback links it again.
    expect(plan.actions[5]).toMatchObject({ target: null, before: '/etc/nginx/sites-available/default', validateInPlace: nginxTest, notify: reload, why: 'the Debian default site is enabled' });
    for (const [i, template] of [[6, 'nginx/server.conf'], [7, 'nginx/app.conf'], [8, 'nginx/site.conf']] as const) {
      expect(plan.actions[i]).toMatchObject({ mode: 0o644, owner: 'root', group: 'root', before: null, validateInPlace: nginxTest, notify: reload, source: `template ${template}` });
    }
    expect(plan.actions[9]).toMatchObject({ target: sitePath, before: null, validateInPlace: nginxTest, notify: reload });
    const site = String((plan.actions[8] as { content: string }).content);
    expect(site).toContain('server_name web.example.org;');
    expect(site).toContain(`include ${serverSnippet};`);
    // The redirect directory is included before the application: certbot's 301 wins over proxy_pass.
    expect(site).toMatch(/location \/ \{\n(?:\s*#.*\n)?\s*include \/etc\/nginx\/zanuri\/http-redirect\.d\/\*\.conf;\n\s*include \/etc\/nginx\/zanuri\/app\.conf;\n\s*\}\n\}\n$/);
    const server = String((plan.actions[6] as { content: string }).content);
    expect(server).toMatch(/location = \/health \{[^}]*return 200 "ok\\n";/);
    expect(server).toMatch(/location \^~ \/\.well-known\/acme-challenge\/ \{\s*root \/var\/www\/zanuri-acme;/);
    expect(String((plan.actions[7] as { content: string }).content)).toMatch(/\nreturn 404;\n$/);
  });

  it('hides its version, sends security headers on every response and limits request bodies (10m by default)', () => {
    const server = serverFor({});
    expect(server).toContain('server_tokens off;\n');
    expect(server).toContain('client_max_body_size 10m;\n');
    for (const header of ['X-Content-Type-Options "nosniff"', 'X-Frame-Options "SAMEORIGIN"', 'Referrer-Policy "strict-origin-when-cross-origin"']) {
      expect(server).toContain(`add_header ${header} always;\n`);
    }
    // add_header in a location would silently drop the server-level ones there.
    expect(server.split('\nlocation ')[0]).toContain('add_header');
    expect(server.split('\nlocation ').slice(1).join('')).not.toContain('add_header');
    expect(serverFor({ clientMaxBodySize: '512k' })).toContain('client_max_body_size 512k;\n');
    expect(siteFor({ serverName: 'web.example.org' }).match(/server_tokens off;/g), 'the catch-all too').toHaveLength(1);
  });

  it('with a server name, answers any other Host from a catch-all default server with 444 (ACME challenges only); with "_" its own site is the default server', () => {
    const named = siteFor({ serverName: 'web.example.org' });
    const [catchAll, own] = named.split(/\n(?=server \{)/).filter((b) => b.includes('server {'));
    expect(catchAll).toContain('listen 80 default_server;\n    listen [::]:80 default_server;\n    server_name _;');
    expect(catchAll).toMatch(/location \/ \{\s*return 444;\s*\}/);
    expect(catchAll).not.toContain('proxy_pass');
    expect(catchAll).not.toContain('include');
    expect(catchAll).toMatch(/location \^~ \/\.well-known\/acme-challenge\/ \{\s*root \/var\/www\/zanuri-acme;/);
    expect(own).toContain('listen 80;\n    listen [::]:80;\n    server_name web.example.org;');
    const any = siteFor({});
    expect(any).not.toContain('return 444');
    expect(any).toContain('listen 80 default_server;\n    listen [::]:80 default_server;\n    server_name _;\n\n    include');
  });

  it('proxies /health to the application\'s own health URL when given, with deadlines, and answers "ok" itself otherwise', () => {
    const proxied = serverFor({ upstream: '127.0.0.1:8000', healthUrl: 'http://127.0.0.1:8000/api/health' });
    expect(proxied).toMatch(/location = \/health \{\n    access_log off;\n    proxy_pass http:\/\/127\.0\.0\.1:8000\/api\/health;\n    proxy_set_header Host \$host;\n    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;\n    proxy_set_header X-Forwarded-Proto \$scheme;\n    proxy_connect_timeout 5s;\n    proxy_read_timeout 10s;\n\}/);
    expect(proxied).not.toContain('return 200');
    expect(serverFor({})).not.toContain('proxy_pass');
  });

  it('declares port 80 as public, so the firewall keeps the site and the ACME challenge open', () => {
    expect(servedPorts([{ step: nginx, params }])).toEqual([{ port: 80, protocol: 'tcp', access: 'public', step: 'nginx', why: 'nginx serves the site and ACME challenges over HTTP' }]);
  });

  it('leaves a converged host alone and says why', () => {
    expect(planOf(nginx, host(), params)).toEqual({ actions: [], noop: 'nginx serves the zanuri site (web.example.org) and is enabled and running' });
  });

  it('rewrites a drifted site in place (checked, then one reload) and only fixes the mode of a site with the right content', () => {
    const drifted = planOf(nginx, host({ site: converged.replace('return 444', 'return 503') }), params);
    expect(drifted.actions).toEqual([expect.objectContaining({ kind: 'put', path: sitePath, validateInPlace: nginxTest, notify: reload, why: `${sitePath} differs from the wanted site` })]);
    expect(planOf(nginx, host({ mode: '666' }), params).actions).toEqual([expect.objectContaining({ kind: 'chmod', path: sitePath, mode: 0o644 })]);
  });

  it('relinks a link that points elsewhere, checked by nginx -t before the reload', () => {
    const plan = planOf(nginx, host({ link: '/etc/nginx/sites-available/other' }), params);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'link', path: siteLink, target: sitePath, before: '/etc/nginx/sites-available/other', validateInPlace: nginxTest, notify: reload })]);
  });

  it('removes a default site that is a plain file, keeping its bytes for rollback', () => {
    const plan = planOf(nginx, host({ defaultSite: 'file' }), params);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'remove', path: defaultSiteLink, validateInPlace: nginxTest, notify: reload, why: 'the Debian default site is enabled' })]);
    expect((plan.actions[0] as { before: { content: Buffer } }).before.content.toString()).toBe(debianDefault);
  });

  it('enables and starts a stopped nginx', () => {
    expect(kinds(planOf(nginx, host({ service: 'disabled\ninactive' }), params).actions)).toEqual(['service nginx.service enable-now']);
  });

  it('sends everything else to an upstream, a static root or a 404, in one snippet that HTTP and HTTPS both include', () => {
    const upstream = appFor({ upstream: '127.0.0.1:3000', webroot: '/srv/acme' });
    expect(upstream).toContain('\nproxy_pass http://127.0.0.1:3000;\nproxy_set_header Host $host;\n');
    expect(upstream).toContain('proxy_set_header X-Forwarded-Proto $scheme;\n');
    expect(upstream).not.toContain('return 404;');
    const root = appFor({ root: '/srv/www' });
    expect(root).toContain('\nroot /srv/www;\ntry_files $uri $uri/ =404;\n');
    expect(root).not.toContain('proxy_pass');
    // A changed upstream changes the snippet only: the site and the certbot step's HTTPS site include it unchanged.
    const moved = planOf(nginx, host(), nginx.parseParams({ serverName: 'web.example.org', upstream: '127.0.0.1:9000' }));
    expect(moved.actions).toEqual([expect.objectContaining({ kind: 'put', path: appSnippet, validateInPlace: nginxTest, notify: reload, why: `${appSnippet} differs from what the site should serve` })]);
    expect(serverFor({ webroot: '/srv/acme' })).toMatch(/root \/srv\/acme;/);
  });

  it('refuses hostile and malformed values before any connection', () => {
    for (const bad of ['a;reboot', '$(id)', 'web.example.org\nx', 'web.example.org;', '"q"', 'Web.Example.org', '*.example.org', '', 'x']) {
      expect(() => nginx.parseParams({ serverName: bad }), JSON.stringify(bad)).toThrow(/serverName must be a DNS name or "_"/);
    }
    expect(() => nginx.parseParams({ root: '/srv/../etc' })).toThrow(/root must be an absolute path/);
    expect(() => nginx.parseParams({ root: '/srv/www; include /etc/shadow' })).toThrow(/root must be an absolute path/);
    expect(() => nginx.parseParams({ upstream: '127.0.0.1:80; return 200' })).toThrow(/upstream must be host:port/);
    expect(() => nginx.parseParams({ root: '/srv', upstream: 'app:80' })).toThrow(/not both/);
    expect(() => nginx.parseParams({ webroot: 'relative' })).toThrow(/webroot must be an absolute path/);
    expect(() => nginx.parseParams({ servername: 'x.org' })).toThrow(/unknown parameter "servername"/);
    for (const bad of ['http://127.0.0.1:8000/h;return 200', 'http://127.0.0.1:8000/$host', 'http://127.0.0.1:8000/h?x=1', 'https://127.0.0.1/h', 'http://a b/', 'ftp://x/', '127.0.0.1:8000/h', 'http://x/h\n']) {
      expect(() => nginx.parseParams({ healthUrl: bad }), JSON.stringify(bad)).toThrow(/healthUrl must be an http:\/\/ URL without query/);
    }
    for (const bad of ['10M;', '1 m', '-1', '10mb', '', '01m', 10]) {
      expect(() => nginx.parseParams({ clientMaxBodySize: bad }), JSON.stringify(bad)).toThrow(/clientMaxBodySize must be a size like 512k/);
    }
  });
});
