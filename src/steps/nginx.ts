import { ConfigError } from '../core/errors.js';
import { plan, type Action } from '../core/plan.js';
import { commandFact, fileFact, linkFact, serviceFact } from '../facts/state.js';
import { domainName, object, optionalString, string } from './params.js';
import type { Step } from './types.js';
import { sharedLocations } from './nginx-site.js';

/**
 * nginx as Debian ships it, with one zanuri site: /health answers 200 "ok", HTTP-01 challenges are
 * served from a webroot (so certbot can obtain certificates "through nginx" without touching its
 * configuration), and the rest goes to a static root, an upstream, or 404. The Debian default site
 * is disabled: ours is the default server on port 80.
 */
export interface NginxParams {
  /** server_name: a DNS name, or "_" for any name. */
  serverName: string;
  /** Static files for everything else; exclusive with upstream. */
  root: string | null;
  /** host:port that everything else is proxied to; exclusive with root. */
  upstream: string | null;
  /** Where HTTP-01 challenge files live (certbot --webroot -w writes here). */
  webroot: string;
}

const id = 'nginx';
export const sitePath = '/etc/nginx/sites-available/zanuri';
export const siteLink = '/etc/nginx/sites-enabled/zanuri';
export const defaultSiteLink = '/etc/nginx/sites-enabled/default';
export const defaultWebroot = '/var/www/zanuri-acme';
const unit = 'nginx.service';

/** An absolute path whose every segment starts with a letter, digit or underscore: no "..", no spaces, no quotes. */
export const absolutePath = /^(?:\/[A-Za-z0-9_][A-Za-z0-9._-]*)+$/;
/** host:port for proxy_pass: a DNS name, an IPv4 address or a bracketed IPv6 address. */
const upstreamPattern = /^(?:[a-z0-9](?:[a-z0-9.-]{0,252}[a-z0-9])?|\[[0-9a-fA-F:]+\]):\d{1,5}$/;

export const checkConfig = { argv: ['nginx', '-t', '-q'] as [string, ...string[]] };

export function renderSite(p: NginxParams): string {
  const rest = p.upstream
    ? ['    location / {', `        proxy_pass http://${p.upstream};`, '        proxy_set_header Host $host;',
      '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;', '        proxy_set_header X-Forwarded-Proto $scheme;', '    }']
    : p.root
      ? ['    location / {', `        root ${p.root};`, '        try_files $uri $uri/ =404;', '    }']
      : ['    location / {', '        return 404;', '    }'];
  return [
    '# Managed by zanuri (nginx); edits here are overwritten.',
    'server {',
    '    listen 80 default_server;',
    '    listen [::]:80 default_server;',
    `    server_name ${p.serverName};`,
    '',
    ...sharedLocations(p.webroot),
    '',
    ...rest,
    '}',
    '',
  ].join('\n');
}

const challengeDir = (webroot: string): string => `${webroot}/.well-known/acme-challenge`;
/** Exit 0 when the webroot's ACME challenge directory exists. */
export const challengeDirFact = (webroot: string): ReturnType<typeof commandFact> => commandFact(['test', '-d', challengeDir(webroot)]);

export const nginx: Step<NginxParams> = {
  id,
  title: 'nginx web server',

  parseParams(raw) {
    const p = object(raw, id, ['serverName', 'root', 'upstream', 'webroot']);
    const serverName = string(p, id, 'serverName', /^(?:_|[a-z0-9.-]+)$/, 'a DNS name or "_"', '_');
    if (serverName !== '_' && !domainName.test(serverName)) throw new ConfigError(`${id}: serverName must be a DNS name or "_", got ${JSON.stringify(serverName)}`);
    const root = optionalString(p, id, 'root', absolutePath, 'an absolute path') ?? null;
    const upstream = optionalString(p, id, 'upstream', upstreamPattern, 'host:port') ?? null;
    if (root && upstream) throw new ConfigError(`${id}: give root or upstream, not both`);
    return { serverName, root, upstream, webroot: string(p, id, 'webroot', absolutePath, 'an absolute path', defaultWebroot) };
  },

  packages: () => ['nginx'],

  facts: (p) => [fileFact(sitePath), linkFact(siteLink), fileFact(defaultSiteLink), linkFact(defaultSiteLink), challengeDirFact(p.webroot), serviceFact(unit)],

  plan(facts, p) {
    const actions: Action[] = [];
    const site = facts.get(fileFact(sitePath));
    const defaultSite = facts.get(fileFact(defaultSiteLink));
    const service = facts.get(serviceFact(unit));
    const running = service.active === 'active';
    const wanted = renderSite(p);
    const siteCurrent = site.content === wanted && site.mode === '644' && site.owner === 'root' && site.group === 'root';
    const link = facts.get(linkFact(siteLink));
    const linked = link === sitePath;

    if (facts.get(challengeDirFact(p.webroot)).exitCode !== 0) {
      actions.push({ kind: 'run', cmd: { argv: ['install', '-d', '-m', '755', '--', p.webroot, `${p.webroot}/.well-known`, challengeDir(p.webroot)] }, why: `the ACME challenge directory ${challengeDir(p.webroot)} does not exist` });
    }
    // The default site is also a default_server on port 80: it goes before ours is validated.
    // Debian enables it as a link to sites-available/default; removing the link keeps rollback exact.
    const defaultTarget = facts.get(linkFact(defaultSiteLink));
    const reloadForDefault = siteCurrent ? {} : { notify: [{ unit, op: 'reload' as const }] };
    if (defaultTarget !== null) {
      actions.push({ kind: 'link', path: defaultSiteLink, target: null, before: defaultTarget, ...reloadForDefault, why: 'the Debian default site is enabled' });
    } else if (defaultSite.exists && defaultSite.content !== null) {
      actions.push({ kind: 'remove', path: defaultSiteLink, before: defaultSite.content, ...reloadForDefault, why: 'the Debian default site is enabled' });
    }
    // Linked before the file is written, so that `nginx -t` after the write checks the site as enabled.
    if (!linked) actions.push({ kind: 'link', path: siteLink, target: sitePath, before: link, why: `${siteLink} does not link to ${sitePath}` });
    if (!siteCurrent) {
      actions.push({
        kind: 'put', path: sitePath, content: wanted, mode: 0o644, owner: 'root', group: 'root', before: site.content,
        validateInPlace: checkConfig, notify: [{ unit, op: 'reload' }],
        why: site.exists ? `${sitePath} differs from the wanted site` : `the zanuri site ${sitePath} does not exist`,
      });
    } else if (actions.some((a) => a.kind === 'remove' || a.kind === 'link')) {
      // No file write to validate and notify: check the enabled sites and reload here, once.
      actions.push({ kind: 'run', cmd: checkConfig, why: 'check the configuration before nginx reloads it' });
      if (running) actions.push({ kind: 'service', unit, op: 'reload', why: 'the enabled sites changed' });
    }
    if (service.enabled !== 'enabled' || !running) {
      actions.push({ kind: 'service', unit, op: 'enable-now', why: `nginx is ${service.enabled} and ${service.active}` });
    }
    return plan(actions, `nginx serves the zanuri site (${p.serverName}) and is enabled and running`);
  },

};
