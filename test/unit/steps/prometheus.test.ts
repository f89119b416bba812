import { describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import { directoryFact, fileFact, serviceFact } from '../../../src/facts/state.js';
import { defaultsPath as exporterDefaults, nodeExporter } from '../../../src/steps/node-exporter.js';
import { defaultsPath as pgDefaults, monitorRoleFact, postgresExporter } from '../../../src/steps/postgres-exporter.js';
import { configPath, defaultsPath, prometheus, rulesDir, rulesPath } from '../../../src/steps/prometheus.js';
import { planOf } from './facts-of.js';

const puts = (plan: Plan): Record<string, string> => Object.fromEntries(plan.actions.flatMap((a) => (a.kind === 'put' ? [[a.path, String(a.content)]] : [])));
const promPlan = (params: unknown): Plan => planOf(prometheus, [
  [fileFact(configPath), 'absent'], [fileFact(defaultsPath), 'absent'], [fileFact(rulesPath), 'absent'], [directoryFact(rulesDir), 'absent'], [serviceFact('prometheus.service'), 'enabled\nactive'],
], prometheus.parseParams(params));

describe('prometheus', () => {
  it('scrapes itself and every job\'s targets, checked by promtool on the staged copy, then reloads', () => {
    const plan = promPlan({ jobs: [{ name: 'node', targets: ['10.0.0.11:9100', '10.0.0.12:9100'] }, { name: 'postgres', targets: ['10.0.0.21:9187'] }] });
    const yml = puts(plan)[configPath] ?? '';
    expect(yml).toContain("  - job_name: 'node'\n    static_configs:\n      - targets:\n          - '10.0.0.11:9100'\n          - '10.0.0.12:9100'\n");
    expect(yml).toContain("  - job_name: 'postgres'");
    expect(yml).toContain("          - 'localhost:9090'");
    const put = plan.actions.find((a) => a.kind === 'put' && a.path === configPath);
    expect(put?.kind === 'put' && put.validate?.argv).toEqual(['promtool', 'check', 'config', '{}']);
    expect(puts(plan)[defaultsPath]).toContain('ARGS="--web.listen-address=:9090 --storage.tsdb.retention.time=15d"');
  });

  it('serves 9090 to the internal networks only', () => {
    expect(prometheus.serves?.(prometheus.parseParams({}))).toEqual([expect.objectContaining({ port: 9090, access: 'internal' })]);
  });

  it('refuses duplicate or reserved job names and targets that are not host:port', () => {
    expect(() => prometheus.parseParams({ jobs: [{ name: 'node', targets: ['a:1'] }, { name: 'node', targets: ['b:1'] }] })).toThrow(/unique/);
    expect(() => prometheus.parseParams({ jobs: [{ name: 'prometheus', targets: ['a:1'] }] })).toThrow(/unique/);
    expect(() => prometheus.parseParams({ jobs: [{ name: 'node', targets: ["a:1'\n  - job_name: x"] }] })).toThrow();
    expect(() => prometheus.parseParams({ retention: '15 days' })).toThrow();
  });
});

describe('node-exporter', () => {
  it('sets its listen port in /etc/default and serves it to the internal networks only', () => {
    const p = nodeExporter.parseParams({ port: 9110 });
    const plan = planOf(nodeExporter, [[fileFact(exporterDefaults), 'absent'], [serviceFact('prometheus-node-exporter.service'), 'enabled\nactive']], p);
    expect(puts(plan)[exporterDefaults]).toContain('ARGS="--web.listen-address=:9110"');
    expect(nodeExporter.serves?.(p)).toEqual([expect.objectContaining({ port: 9110, access: 'internal' })]);
  });
});

describe('postgres-exporter', () => {
  const planFor = (roleAnswer: string): Plan => planOf(postgresExporter, [
    [monitorRoleFact, roleAnswer], [fileFact(pgDefaults), 'absent'], [serviceFact('prometheus-postgres-exporter.service'), 'enabled\nactive'],
  ], postgresExporter.parseParams({}));

  it('creates the prometheus role in pg_monitor when psql says it is missing, and connects over the socket without a password', () => {
    const plan = planFor('\n@@rc=0');
    const run = plan.actions.find((a) => a.kind === 'run');
    expect(run?.kind === 'run' && run.cmd.argv.join(' ')).toContain('GRANT pg_monitor TO prometheus');
    expect(puts(plan)[pgDefaults]).toContain("DATA_SOURCE_NAME='user=prometheus host=/run/postgresql dbname=postgres'");
    expect(puts(plan)[pgDefaults]).not.toMatch(/password=/i);
  });

  it('creates no role when it exists in pg_monitor, and plans it where psql is not installed yet', () => {
    expect(planFor('t\n@@rc=0').actions.some((a) => a.kind === 'run')).toBe(false);
    expect(planFor('runuser: failed to execute psql: No such file or directory\n@@rc=127').actions.some((a) => a.kind === 'run')).toBe(true);
  });
});

describe('postgres-exporter after the package install', () => {
  it('resets the unit the package left failed before starting it', () => {
    const plan = planOf(postgresExporter, [
      [monitorRoleFact, 't\n@@rc=0'], [fileFact(pgDefaults), 'absent'], [serviceFact('prometheus-postgres-exporter.service'), 'enabled\nfailed'],
    ], postgresExporter.parseParams({}));
    const argvs = plan.actions.map((a) => (a.kind === 'run' ? a.cmd.argv.join(' ') : a.kind === 'service' ? `service ${a.op}` : a.kind));
    expect(argvs).toEqual(['put', 'systemctl reset-failed -- prometheus-postgres-exporter.service', 'service start']);
  });
});

describe('postgres-exporter reading psql', () => {
  it('reads the answer on the last line, after psql\'s warning about the working directory', () => {
    const plan = planOf(postgresExporter, [
      [monitorRoleFact, 'could not change directory to "/root": Permission denied\nt\n@@rc=0'], [fileFact(pgDefaults), 'absent'], [serviceFact('prometheus-postgres-exporter.service'), 'enabled\nactive'],
    ], postgresExporter.parseParams({}));
    expect(plan.actions.some((a) => a.kind === 'run')).toBe(false);
  });
});
