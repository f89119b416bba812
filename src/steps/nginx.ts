import { ConfigError } from '../core/errors.js';
import { fileFact, linkFact } from '../facts/state.js';
import { directory } from '../resources/directory.js';
import { absent, file } from '../resources/file.js';
import { link } from '../resources/link.js';
import { service } from '../resources/service.js';
import { appSnippet, nginxTest, redirectDir, reloadNginx, serverSnippet, webrootParam, zanuriConfDir } from './nginx-shared.js';
import { absolutePath, domainName, params, Type } from './schema.js';
import { defineStep } from './types.js';

/** Directories a web root must never be or be inside; the bare parents (/, /home, /var) only as themselves. */
const systemTrees = ['/etc', '/root', '/proc', '/sys', '/dev', '/boot', '/run', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/var/lib', '/var/log', '/var/backups', '/var/spool', '/var/mail', '/var/cache', '/var/tmp', '/tmp', '/snap', '/lost+found'];
const systemParents = ['/', '/home', '/var', '/srv', '/opt', '/mnt', '/media'];
export const systemDirectory = (root: string): boolean => {
  const path = root.replace(/\/+$/, '') || '/';
  return systemParents.includes(path) || systemTrees.some((t) => path === t || path.startsWith(`${t}/`));
};

export const sitePath = '/etc/nginx/sites-available/zanuri';
export const siteLink = '/etc/nginx/sites-enabled/zanuri';
export const defaultSiteLink = '/etc/nginx/sites-enabled/default';

const host = '(?:[a-z0-9](?:[a-z0-9.-]{0,252}[a-z0-9])?|\\[[0-9a-fA-F:]+\\])';
/** host:port for proxy_pass: a DNS name, an IPv4 address or a bracketed IPv6 address. */
const upstreamPattern = `^${host}:\\d{1,5}$`;
/** A plain http URL: no query, no `$` (nginx would read a variable), no quotes, spaces or `;`. */
const healthUrlPattern = `^http://${host}(?::\\d{1,5})?(?:/[A-Za-z0-9._~/-]*)?$`;

/**
 * nginx as Debian ships it, with one zanuri site on port 80. What the site serves lives in two
 * snippets under /etc/nginx/zanuri/ that the certbot step's HTTPS site includes too (see
 * nginx-shared.ts), so HTTP and HTTPS serve the same application: /health (a static "ok" or the
 * application's own health URL), the HTTP-01 challenges from a webroot (so certbot obtains
 * certificates "through nginx" without touching its configuration), and the rest from an upstream,
 * a static root, or 404; with hardened defaults (no version in headers, security headers, a body
 * size limit). With a server name, a catch-all default server answers any other Host with 444.
 * The Debian default site is disabled.
 */
export const nginx = defineStep({
  id: 'nginx',
  title: 'nginx web server',
  params: params({
    serverName: Type.Union([Type.Literal('_'), domainName()], { default: '_', what: 'a DNS name or "_"', description: 'server_name: a DNS name (other Host headers get no answer, 444), or "_" for any name (the site is then the default server).' }),
    root: Type.Union([absolutePath(), Type.Null()], { default: null, what: 'an absolute path', description: 'Static files for everything else; exclusive with upstream.' }),
    systemRoot: Type.Boolean({ default: false, description: 'Allow root to be a system directory (/, /etc, /root, /home, /proc, /usr, /var, /var/lib, ... or inside one): off, such a root is refused, since the site would serve /etc/passwd or keys.' }),
    upstream: Type.Union([Type.String({ pattern: upstreamPattern }), Type.Null()], { default: null, what: 'host:port', description: 'host:port that everything else is proxied to; exclusive with root.' }),
    healthUrl: Type.Union([Type.String({ pattern: healthUrlPattern }), Type.Null()], { default: null, what: 'an http:// URL without query', description: '/health proxies to this URL (the application\'s own health check, e.g. http://127.0.0.1:8000/health); null: a static 200 "ok".' }),
    clientMaxBodySize: Type.String({ pattern: '^(?:0|[1-9][0-9]{0,5}[kmg]?)$', default: '10m', what: 'a size like 512k, 10m or 1g (0: no limit)', description: 'client_max_body_size: the largest request body (uploads) nginx accepts.' }),
    webroot: webrootParam,
  }),

  check(p) {
    if (p.root && p.upstream) throw new ConfigError('nginx: give root or upstream, not both');
    if (p.root && !p.systemRoot && systemDirectory(p.root)) {
      throw new ConfigError(`nginx: root ${p.root} is a system directory: the site would serve its files to anyone`, { hint: 'serve a directory of the site\'s own (e.g. /var/www/site or /srv/site), or set nginx.systemRoot=true if this is really meant' });
    }
    return p;
  },

  packages: () => ['nginx'],

  serves: () => [{ port: 80, protocol: 'tcp', access: 'public', why: 'nginx serves the site and ACME challenges over HTTP' }],

  // Both, always: which resource stands for the default site depends on the link, and the engine
  // re-reads only the facts of the resources declared from the facts it had before a change.
  facts: () => [linkFact(defaultSiteLink), fileFact(defaultSiteLink)],

  resources(facts, p, { templates }) {
    const challenges = `${p.webroot}/.well-known/acme-challenge`;
    const checked = { validateInPlace: nginxTest, notify: reloadNginx };
    // The default site is a default_server on port 80 too: it goes before ours is enabled. Debian
    // enables it as a link to sites-available/default; unlinking it keeps rollback exact.
    const unlinkDefault = { ...checked, why: 'the Debian default site is enabled' };
    const catchAll = p.serverName !== '_';
    return [
      directory(p.webroot),
      directory(`${p.webroot}/.well-known`),
      directory(challenges, { why: `the ACME challenge directory ${challenges} does not exist` }),
      directory(zanuriConfDir),
      directory(redirectDir),
      facts.get(linkFact(defaultSiteLink)) !== null ? link(defaultSiteLink, null, unlinkDefault) : absent(defaultSiteLink, unlinkDefault),
      // The snippets before the site that includes them: `nginx -t` never sees a missing include.
      file(serverSnippet, templates.render('nginx/server.conf', { clientMaxBodySize: p.clientMaxBodySize, healthUrl: p.healthUrl, webroot: p.webroot }), {
        ...checked, whyDiffers: `${serverSnippet} differs from the wanted headers, limits and shared locations`,
      }),
      file(appSnippet, templates.render('nginx/app.conf', { upstream: p.upstream, root: p.root }), {
        ...checked, whyDiffers: `${appSnippet} differs from what the site should serve`,
      }),
      // Written before it is linked: once enabled, `nginx -t` never sees a link to a missing file.
      file(sitePath, templates.render('nginx/site.conf', {
        serverName: p.serverName, catchAll, webroot: p.webroot, serverConf: serverSnippet, appConf: appSnippet, redirectDir,
      }), {
        ...checked,
        whyMissing: `the zanuri site ${sitePath} does not exist`,
        whyDiffers: `${sitePath} differs from the wanted site`,
      }),
      link(siteLink, sitePath, checked),
      service('nginx.service'),
    ];
  },

  converged: (p) => `nginx serves the zanuri site (${p.serverName}) and is enabled and running`,
});
