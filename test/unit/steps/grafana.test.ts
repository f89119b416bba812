/**
 * The grafana and loki steps' declarations, and the shipped copy of Grafana's repository key
 * checked with real gpg against the fingerprint Grafana publishes (templates/grafana/KEYS.md).
 * The steps also run against a real target, from a stand-in repository, in
 * test/integration/provision-grafana.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import type { FactRequest, FactValues } from '../../../src/facts/state.js';
import { keyringPath, sourcesPath } from '../../../src/resources/apt-repository.js';
import { dashboardPath, datasourcesPath, dropInPath, grafana, passwordPath } from '../../../src/steps/grafana.js';
import { grafanaKeyFingerprint } from '../../../src/steps/grafana-shared.js';
import { configPath as lokiConfig, loki } from '../../../src/steps/loki.js';
import { planStep } from '../../../src/steps/plan.js';
import type { AnyStep } from '../../../src/steps/types.js';
import { ctx } from './facts-of.js';

/** A bare host: every fact reads as its parser reads empty output (files absent, commands not run). */
const bare: FactValues = { get: <T>(request: FactRequest<T>): T => request.parse(request.key.startsWith('command:') ? 'missing\n@@rc=1' : '') };
const planOf = (step: AnyStep, params: Record<string, unknown> = {}): Plan => planStep(step, bare, step.parseParams(params), ctx);
const puts = (plan: Plan): Record<string, string> => Object.fromEntries(plan.actions.flatMap((a) => (a.kind === 'put' ? [[a.path, String(a.content)]] : [])));
const shippedKey = readFileSync(new URL('../../../templates/grafana/grafana-key.asc', import.meta.url), 'utf8');

describe('the shipped Grafana repository key', () => {
  it('is the key whose fingerprint Grafana publishes, B53A E77B ADB6 30A6 8304 6005 963F A277 1045 8545 (real gpg)', () => {
    const home = mkdtempSync(join(tmpdir(), 'zanuri-gpg-'));
    try {
      const out = execFileSync('gpg', ['--homedir', home, '--batch', '--with-colons', '--show-keys', '-'], { input: shippedKey, timeout: 60_000 }).toString();
      const fprs = out.split('\n').filter((l) => l.startsWith('fpr:')).map((l) => l.split(':')[9]);
      expect(fprs[0]).toBe(grafanaKeyFingerprint);
      expect(out).toMatch(/^uid:.*Grafana Labs <engineering@grafana\.com>/m);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('grafana', () => {
  it('adds Grafana\'s repository as deb822 with its own keyring (the shipped key), then installs grafana', () => {
    const plan = planOf(grafana);
    const files = puts(plan);
    expect(files[keyringPath('grafana')]).toBe(shippedKey);
    expect(files[sourcesPath('grafana')]).toMatch(/^URIs: https:\/\/apt\.grafana\.com\nSuites: stable\nComponents: main\nSigned-By: \/etc\/apt\/keyrings\/zanuri-grafana\.asc$/m);
    const kinds = plan.actions.map((a) => a.kind);
    expect(kinds.indexOf('put')).toBeLessThan(kinds.indexOf('packages'));
  });

  it('takes the operator\'s key instead, and refuses a key that is not one armored block', () => {
    const key = ['-----BEGIN PGP PUBLIC KEY BLOCK-----', '', 'mDMEaw44fBYJKwYBBAHaRw8BAQdA2fIYmiXSoS7W5mOlzi6gS+TxO638zMittOa0', '=W2Wd', '-----END PGP PUBLIC KEY BLOCK-----'];
    expect(puts(planOf(grafana, { repositoryKey: key }))[keyringPath('grafana')]).toContain('mDMEaw44fBYJ');
    expect(() => grafana.parseParams({ repositoryKey: ['-----BEGIN PGP PUBLIC KEY BLOCK-----', 'x"; reboot', '-----END PGP PUBLIC KEY BLOCK-----'] })).toThrow(/armored/);
    expect(() => grafana.parseParams({ repositoryUrl: 'http://x/ stable main\nURIs: http://evil' })).toThrow();
  });

  it('generates the admin password on the host and hands it over as a systemd credential; no sign-up, no anonymous access', () => {
    const plan = planOf(grafana, { port: 3001 });
    const generate = plan.actions.find((a) => a.kind === 'run' && a.cmd.argv.includes(passwordPath));
    expect(generate?.why).toMatch(/never leaves it/);
    const dropIn = puts(plan)[dropInPath] ?? '';
    expect(dropIn).toContain(`LoadCredential=admin-password:${passwordPath}`);
    expect(dropIn).toContain('Environment=GF_SECURITY_ADMIN_PASSWORD__FILE=%d/admin-password');
    expect(dropIn).toContain('Environment=GF_SERVER_HTTP_PORT=3001');
    expect(dropIn).toContain('Environment=GF_AUTH_ANONYMOUS_ENABLED=false');
    expect(dropIn).toContain('Environment=GF_USERS_ALLOW_SIGN_UP=false');
    expect(grafana.serves?.(grafana.parseParams({}))).toEqual([expect.objectContaining({ port: 3000, access: 'internal' })]);
  });

  it('provisions Prometheus (default) and Loki as datasources, and a dashboard that is valid JSON on zanuri\'s recording rules', () => {
    const files = puts(planOf(grafana, { lokiUrl: 'http://10.0.0.9:3100' }));
    expect(files[datasourcesPath]).toContain('    type: prometheus\n    access: proxy\n    url: http://localhost:9090\n    isDefault: true');
    expect(files[datasourcesPath]).toContain('    type: loki\n    access: proxy\n    url: http://10.0.0.9:3100');
    expect(puts(planOf(grafana, { lokiUrl: null }))[datasourcesPath]).not.toContain('type: loki');
    const dashboard = JSON.parse(files[dashboardPath] ?? '') as { uid: string; panels: Array<{ targets: Array<{ expr: string }> }> };
    expect(dashboard.uid).toBe('zanuri-fleet');
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs).toContain('instance:node_cpu_utilisation:rate5m');
    expect(exprs).toContain('DCGM_FI_DEV_GPU_UTIL');
  });
});

describe('loki', () => {
  it('keeps logs 90 days by default (seed 003) on the local filesystem, its configuration checked by loki -verify-config on the staged copy', () => {
    const plan = planOf(loki);
    const config = puts(plan)[lokiConfig] ?? '';
    expect(config).toContain('retention_period: 2160h');
    expect(config).toContain('retention_enabled: true');
    expect(config).toContain('http_listen_port: 3100');
    expect(config).toContain('grpc_listen_address: 127.0.0.1');
    expect(config).toContain('reporting_enabled: false');
    const put = plan.actions.find((a) => a.kind === 'put' && a.path === lokiConfig);
    expect(put?.kind === 'put' && put.validate?.argv).toEqual(['loki', '-config.file', '{}', '-verify-config']);
    expect(puts(planOf(loki, { retentionDays: 30 }))[lokiConfig]).toContain('retention_period: 720h');
    expect(loki.serves?.(loki.parseParams({}))).toEqual([expect.objectContaining({ port: 3100, access: 'internal' })]);
  });
});
