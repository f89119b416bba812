import type { Templates } from '../core/content.js';
import type { Handler } from '../core/plan.js';
import type { Cmd } from '../core/types.js';
import { absolutePath } from './schema.js';

/** What the nginx and certbot steps share; a step never imports another step. */

/** nginx checks its whole configuration, every enabled site included; -q: errors only. */
export const nginxTest: Cmd = { argv: ['nginx', '-t', '-q'] };
/** reload-or-restart: a stopped nginx is started with the new configuration. */
export const reloadNginx: Handler[] = [{ unit: 'nginx.service', op: 'reload' }];

export const webrootParam = absolutePath({
  default: '/var/www/zanuri-acme',
  description: 'Where HTTP-01 challenge files live (certbot --webroot -w writes here; both sites serve them).',
});

/**
 * The locations both server blocks carry (/health and the ACME challenges), rendered once and given
 * to either site template as `locations`: templates have no partials.
 */
export function sharedLocations(templates: Templates, webroot: string): string {
  return String(templates.render('nginx/locations.conf', { webroot }).text);
}
