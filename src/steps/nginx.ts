import { ConfigError } from '../core/errors.js';
import { fileFact, linkFact } from '../facts/state.js';
import { directory } from '../resources/directory.js';
import { absent, file } from '../resources/file.js';
import { link } from '../resources/link.js';
import { service } from '../resources/service.js';
import { nginxTest, reloadNginx, sharedLocations, webrootParam } from './nginx-shared.js';
import { absolutePath, domainName, params, Type } from './schema.js';
import { defineStep } from './types.js';

export const sitePath = '/etc/nginx/sites-available/zanuri';
export const siteLink = '/etc/nginx/sites-enabled/zanuri';
export const defaultSiteLink = '/etc/nginx/sites-enabled/default';

/** host:port for proxy_pass: a DNS name, an IPv4 address or a bracketed IPv6 address. */
const upstreamPattern = '^(?:[a-z0-9](?:[a-z0-9.-]{0,252}[a-z0-9])?|\\[[0-9a-fA-F:]+\\]):\\d{1,5}$';

/**
 * nginx as Debian ships it, with one zanuri site: /health answers 200 "ok", HTTP-01 challenges are
 * served from a webroot (so certbot can obtain certificates "through nginx" without touching its
 * configuration), and the rest goes to a static root, an upstream, or 404. The Debian default site
 * is disabled: ours is the default server on port 80.
 */
export const nginx = defineStep({
  id: 'nginx',
  title: 'nginx web server',
  params: params({
    serverName: Type.Union([Type.Literal('_'), domainName()], { default: '_', what: 'a DNS name or "_"', description: 'server_name: a DNS name, or "_" for any name.' }),
    root: Type.Union([absolutePath(), Type.Null()], { default: null, what: 'an absolute path', description: 'Static files for everything else; exclusive with upstream.' }),
    upstream: Type.Union([Type.String({ pattern: upstreamPattern }), Type.Null()], { default: null, what: 'host:port', description: 'host:port that everything else is proxied to; exclusive with root.' }),
    webroot: webrootParam,
  }),

  check(p) {
    if (p.root && p.upstream) throw new ConfigError('nginx: give root or upstream, not both');
    return p;
  },

  packages: () => ['nginx'],

  // Both, always: which resource stands for the default site depends on the link, and the engine
  // re-reads only the facts of the resources declared from the facts it had before a change.
  facts: () => [linkFact(defaultSiteLink), fileFact(defaultSiteLink)],

  resources(facts, p, { templates }) {
    const challenges = `${p.webroot}/.well-known/acme-challenge`;
    const checked = { validateInPlace: nginxTest, notify: reloadNginx };
    // The default site is a default_server on port 80 too: it goes before ours is enabled. Debian
    // enables it as a link to sites-available/default; unlinking it keeps rollback exact.
    const unlinkDefault = { ...checked, why: 'the Debian default site is enabled' };
    return [
      directory(p.webroot),
      directory(`${p.webroot}/.well-known`),
      directory(challenges, { why: `the ACME challenge directory ${challenges} does not exist` }),
      facts.get(linkFact(defaultSiteLink)) !== null ? link(defaultSiteLink, null, unlinkDefault) : absent(defaultSiteLink, unlinkDefault),
      // Written before it is linked: once enabled, `nginx -t` never sees a link to a missing file.
      file(sitePath, templates.render('nginx/site.conf', { ...p, locations: sharedLocations(templates, p.webroot) }), {
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
