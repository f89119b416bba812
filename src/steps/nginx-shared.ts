import type { Handler } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import { absolutePath } from './schema.js';

/**
 * What the nginx and certbot steps share; a step never imports another step. They meet in nginx's
 * own configuration instead, each writing only its own files:
 * - the nginx step writes `serverSnippet` (server-level: headers, limits, /health, ACME challenges)
 *   and `appSnippet` (what `location /` serves: the upstream, the root or a 404), included by its
 *   HTTP site and by certbot's HTTPS site, so both serve the same application;
 * - the HTTP site's `location /` includes `redirectDir/*.conf`, empty until certbot writes
 *   `redirectSnippet` (301 to HTTPS) once a certificate is in place.
 * Neither step ever rewrites the other's files, so each run of either, in any order, converges.
 */
export const zanuriConfDir = '/etc/nginx/zanuri';
export const serverSnippet = `${zanuriConfDir}/server.conf`;
export const appSnippet = `${zanuriConfDir}/app.conf`;
export const redirectDir = `${zanuriConfDir}/http-redirect.d`;
export const redirectSnippet = `${redirectDir}/https.conf`;

/** nginx checks its whole configuration, every enabled site included; -q: errors only. */
export const nginxTest: Cmd = { argv: ['nginx', '-t', '-q'] };
/** reload-or-restart: a stopped nginx is started with the new configuration. */
export const reloadNginx: Handler[] = [{ unit: 'nginx.service', op: 'reload' }];

export const webrootParam = absolutePath({
  default: '/var/www/zanuri-acme',
  description: 'Where HTTP-01 challenge files live (certbot --webroot -w writes here; the nginx step serves them).',
});
