import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import { directoryFact, fileFact, linkFact, serviceFact, type FactRequest } from '../../../src/facts/state.js';
import { defaultSiteLink, nginx, siteLink, sitePath } from '../../../src/steps/nginx.js';
import { planStep } from '../../../src/steps/plan.js';
import { ctx, planOf, present, templates } from './facts-of.js';

const params = nginx.parseParams({ serverName: 'web.example.org' });
const webroot = '/var/www/zanuri-acme';
const dirs = [webroot, `${webroot}/.well-known`, `${webroot}/.well-known/acme-challenge`];
const nginxTest = { argv: ['nginx', '-t', '-q'] };
const reload = [{ unit: 'nginx.service', op: 'reload' }];

/** A host with nothing on it: every fact parses empty output. */
const bare = { get: <T>(request: FactRequest<T>): T => request.parse('') };

/** Captured on Debian 12 right after `apt-get install nginx`. */
const debianDefault = '##\n# You should look at the following URL\'s in order to grasp a solid understanding\nserver {\n\tlisten 80 default_server;\n\tlisten [::]:80 default_server;\n\troot /var/www/html;\n}\n';

/** The site as the step renders it for these raw parameters (from a plan against a bare host). */
function siteFor(raw: unknown): string {
  const put = planStep(nginx, bare, nginx.parseParams(raw), ctx).actions.find((a) => a.kind === 'put' && a.path === sitePath);
  return String((put as { content: string }).content);
}

type Entries = Parameters<typeof planOf>[1];
function host(o: { site?: string | null; mode?: string; link?: string | null; defaultSite?: 'link' | 'file'; dirs?: boolean; service?: string } = {}): Entries {
  const site = o.site === undefined ? converged : o.site;
  return [
    ...dirs.map((d): Entries[number] => [directoryFact(d), o.dirs === false ? 'absent' : 'dir 755 root root']),
    [linkFact(defaultSiteLink), o.defaultSite === 'link' ? 'link\n/etc/nginx/sites-available/default' : 'none'],
    [fileFact(defaultSiteLink), o.defaultSite ? present(debianDefault) : 'absent'],
    [fileFact(sitePath), site === null ? 'absent' : present(site, o.mode)],
    [linkFact(siteLink), o.link === null ? 'none' : `link\n${o.link ?? sitePath}`],
    [serviceFact('nginx.service'), o.service ?? 'enabled\nactive'],
  ];
}
const converged = siteFor({ serverName: 'web.example.org' });
const kinds = (actions: readonly Action[]): string[] => actions.map((a) => `${a.kind} ${'path' in a ? a.path : 'unit' in a ? `${a.unit} ${a.op}` : ''}`);

describe('nginx', () => {
  it('on a fresh Debian nginx: makes the challenge directories, unlinks the default site, writes the site and only then links it, each checked by nginx -t', () => {
    const plan = planOf(nginx, host({ site: null, link: null, defaultSite: 'link', dirs: false }), params);
    expect(kinds(plan.actions)).toEqual([...dirs.map((d) => `directory ${d}`), `link ${defaultSiteLink}`, `put ${sitePath}`, `link ${siteLink}`]);
    expect(plan.actions[2]).toMatchObject({ mode: 0o755, owner: 'root', why: `the ACME challenge directory ${webroot}/.well-known/acme-challenge does not exist` });
    // Debian's default site is a link: it is unlinked, and a rollback links it again.
    expect(plan.actions[3]).toMatchObject({ target: null, before: '/etc/nginx/sites-available/default', validateInPlace: nginxTest, notify: reload, why: 'the Debian default site is enabled' });
    expect(plan.actions[4]).toMatchObject({ mode: 0o644, owner: 'root', group: 'root', before: null, validateInPlace: nginxTest, notify: reload, source: 'template nginx/site.conf' });
    expect(plan.actions[5]).toMatchObject({ target: sitePath, before: null, validateInPlace: nginxTest, notify: reload });
    const site = String((plan.actions[4] as { content: string }).content);
    expect(site).toContain('server_name web.example.org;');
    expect(site).toContain('listen 80 default_server;');
    expect(site).toMatch(/location = \/health \{[^}]*return 200 "ok\\n";/);
    expect(site).toMatch(/location \^~ \/\.well-known\/acme-challenge\/ \{\s*root \/var\/www\/zanuri-acme;/);
    expect(site).toMatch(/location \/ \{\s*return 404;\s*\}\n\}\n$/);
  });

  it('leaves a converged host alone and says why', () => {
    expect(planOf(nginx, host(), params)).toEqual({ actions: [], noop: 'nginx serves the zanuri site (web.example.org) and is enabled and running' });
  });

  it('rewrites a drifted site in place (checked, then one reload) and only fixes the mode of a site with the right content', () => {
    const drifted = planOf(nginx, host({ site: converged.replace('return 200', 'return 503') }), params);
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

  it('sends everything else to an upstream, a static root or a 404, after the shared locations', () => {
    const locations = String(templates.render('nginx/locations.conf', { webroot: '/srv/acme' }).text);
    const upstream = siteFor({ upstream: '127.0.0.1:3000', webroot: '/srv/acme' });
    expect(upstream).toContain(`server_name _;\n\n${locations}\n    location / {\n        proxy_pass http://127.0.0.1:3000;\n`);
    expect(upstream).not.toContain('return 404;');
    const root = siteFor({ root: '/srv/www' });
    expect(root).toContain('    location / {\n        root /srv/www;\n        try_files $uri $uri/ =404;\n    }\n}\n');
    expect(root).not.toContain('proxy_pass');
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
  });
});
