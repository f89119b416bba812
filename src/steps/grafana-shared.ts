import type { Content } from '../core/content.js';
import { aptRepository, keyringPath } from '../resources/apt-repository.js';
import type { Resource } from '../resources/types.js';
import { armoredKey, checkArmoredKey } from './docker-shared.js';
import { url } from './schema.js';
import type { PlanContext } from './types.js';

/**
 * What the grafana and loki steps share (a step never imports another step): Grafana's apt
 * repository (https://apt.grafana.com stable main: Grafana and Loki are not in Debian's archive),
 * as a deb822 source whose Signed-By names its own keyring, and its key: the shipped copy of
 * Grafana's signing key (templates/grafana/KEYS.md: where it comes from, how it was checked) or
 * the operator's.
 */
export const grafanaKeyFingerprint = 'B53AE77BADB630A683046005963FA27710458545';
export const grafanaRepositoryName = 'grafana';
const defaultUrl = 'https://apt.grafana.com';

export const grafanaRepositoryParams = {
  repositoryUrl: url({ default: defaultUrl, description: 'Grafana\'s apt repository (suite stable, component main), or a mirror of it.' }),
  repositoryKey: armoredKey('Grafana\'s signing key, ASCII-armored; null: the shipped copy of apt.grafana.com/gpg.key (templates/grafana/grafana-key.asc, fingerprint B53A E77B ADB6 30A6 8304 6005 963F A277 1045 8545, expires 2027-08-22). E.g. --set grafana.repositoryKey=@grafana.asc.'),
};

export interface GrafanaRepositoryParams { repositoryUrl: string; repositoryKey: string | null }

export function checkGrafanaRepository<P extends { repositoryKey: string | string[] | null }>(step: string, raw: P): Omit<P, 'repositoryKey'> & { repositoryKey: string | null } {
  return { ...raw, repositoryKey: checkArmoredKey(step, 'repositoryKey', raw.repositoryKey) };
}

/** Grafana's repository with its own keyring; both steps declare the same files, so either converges it. */
export function grafanaRepository(p: GrafanaRepositoryParams, ctx: PlanContext): Resource {
  const key: Content = p.repositoryKey === null ? ctx.templates.render('grafana/grafana-key.asc', {}) : ctx.templates.render('grafana/repository-key.asc', { key: p.repositoryKey });
  return aptRepository(grafanaRepositoryName, {
    key,
    sources: ctx.templates.render('grafana/grafana.sources', { url: p.repositoryUrl, keyring: keyringPath(grafanaRepositoryName) }),
  });
}
