/**
 * Plans of the monitoring steps that a plain test host cannot run for real: the DCGM exporter from
 * captured GPU facts (lspci of an RTX 4090 host, an HGX A100 and a laptop without NVIDIA; the driver
 * version from a captured `nvidia-smi -q`; sources beside each file in test/facts/), the Redis
 * exporter's and Prometheus's declarations, and the shipped playbooks' monitoring parts.
 * (The Redis exporter and Prometheus also run for real in test/integration/provision-monitoring.test.ts.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import { parseNvidiaSmiQuery } from '../../../src/facts/gpu.js';
import type { FactRequest, FactValues } from '../../../src/facts/state.js';
import { backups, confPath as backupsConf } from '../../../src/steps/backups.js';
import { dcgmExporter, defaultImage, unitPath } from '../../../src/steps/dcgm-exporter.js';
import { planStep } from '../../../src/steps/plan.js';
import { configPath, prometheus, rulesPath } from '../../../src/steps/prometheus.js';
import { defaultsPath as redisDefaults, dropInPath, exporterAclRules, redisExporter } from '../../../src/steps/redis-exporter.js';
import type { AnyStep } from '../../../src/steps/types.js';
import { ctx } from './facts-of.js';

const fixture = (path: string): string => readFileSync(new URL(`../../facts/${path}`, import.meta.url), 'utf8');
const rtx4090 = fixture('gpu/rtx-4090.lspci-nn.txt');
const hgxA100 = fixture('gpu/a100-sxm4-80gb-hgx.lspci-nn.txt');
const noNvidia = fixture('lspci/zenbook-ux371-no-nvidia.lspci-nn.txt');
const debian12 = fixture('os/debian12.os-release');
const ubuntu2204 = fixture('gpu/ubuntu-22.04.os-release');
const a100Driver = parseNvidiaSmiQuery(fixture('gpu/a100-sxm4-80gb.nvidia-smi-q.txt')).driverVersion as string;

/** Facts by request key, parsed by each request's own parser; anything not given reads as absent. */
function hostFacts(outputs: Record<string, string>): FactValues {
  return { get: <T>(request: FactRequest<T>): T => request.parse(outputs[request.key] ?? '') };
}
const nvidiaSmiKey = 'command:["nvidia-smi","--query-gpu=driver_version","--format=csv,noheader"]';
const noDriver = 'sh: 1: nvidia-smi: not found\n@@rc=127';
const planOf = (step: AnyStep, outputs: Record<string, string>, params: Record<string, unknown> = {}): Plan => planStep(step, hostFacts(outputs), step.parseParams(params), ctx);
const puts = (plan: Plan): Record<string, string> => Object.fromEntries(plan.actions.flatMap((a) => (a.kind === 'put' ? [[a.path, String(a.content)]] : [])));
const kinds = (plan: Plan): string[] => plan.actions.map((a) => (a.kind === 'run' ? a.cmd.argv.join(' ') : a.kind === 'put' ? `put ${a.path}` : a.kind === 'service' ? `${a.op} ${a.unit}` : a.kind));

describe('dcgm-exporter, planned from captured GPU facts (no GPU here)', () => {
  it('skips with its reason on a host without an NVIDIA GPU (lspci of a laptop with Intel graphics only)', () => {
    const plan = planOf(dcgmExporter, { 'os-release': debian12, 'nvidia-pci': noNvidia, [nvidiaSmiKey]: noDriver });
    expect(plan.actions).toEqual([]);
    expect('noop' in plan && plan.noop).toMatch(/^skipped: no NVIDIA GPU on the PCI bus/);
  });

  it('runs NVIDIA\'s exporter image with every GPU on the host network, as a unit, on an RTX 4090 host (captured lspci) whose driver answers', () => {
    const plan = planOf(dcgmExporter, { 'os-release': ubuntu2204, 'nvidia-pci': rtx4090, [nvidiaSmiKey]: `${a100Driver}\n@@rc=0` });
    expect(kinds(plan)).toEqual([`put ${unitPath}`, 'systemctl daemon-reload', 'enable-now zanuri-dcgm-exporter.service']);
    const unit = puts(plan)[unitPath] ?? '';
    expect(unit).toContain(`ExecStart=/usr/bin/docker run --rm --name zanuri-dcgm-exporter --gpus all --cap-add SYS_ADMIN --network host ${defaultImage} -a :9400`);
    expect(unit).toMatch(/Requires=docker\.service/);
    expect(plan.actions[0]?.why).toMatch(/1 NVIDIA GPU\(s\) on the bus/);
  });

  it('counts the eight GPUs of an HGX A100 (captured lspci) and plans before the driver answers, saying so', () => {
    const plan = planOf(dcgmExporter, { 'os-release': debian12, 'nvidia-pci': hgxA100, [nvidiaSmiKey]: noDriver }, { port: 9500 });
    expect(plan.actions[0]?.why).toMatch(/8 NVIDIA GPU\(s\)/);
    expect(puts(plan)[unitPath]).toContain(' -a :9500');
    const converged = dcgmExporter.converged(dcgmExporter.parseParams({}), hostFacts({ 'os-release': debian12, 'nvidia-pci': hgxA100, [nvidiaSmiKey]: noDriver }), ctx);
    expect(converged).toMatch(/8 NVIDIA GPU\(s\) on 9400 \(internal\) once the driver answers \(nvidia-smi is not installed yet\)/);
    expect(dcgmExporter.serves?.(dcgmExporter.parseParams({}))).toEqual([expect.objectContaining({ port: 9400, access: 'internal' })]);
  });

  it('refuses an image reference that could carry shell or unit syntax', () => {
    for (const bad of ['nvcr.io/x:1 --privileged', 'x:1\nExecStartPre=/bin/sh', "x'; reboot", '$(reboot)']) {
      expect(() => dcgmExporter.parseParams({ image: bad }), bad).toThrow();
    }
    expect(dcgmExporter.parseParams({ image: `nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04@sha256:${'a'.repeat(64)}` }).image).toMatch(/@sha256:/);
  });
});

describe('redis-exporter', () => {
  it('points the exporter at the local Redis as its own user, and hands it the password as a systemd credential, never in a file it writes', () => {
    const plan = planOf(redisExporter, { 'service:prometheus-redis-exporter.service': 'enabled\nactive' }, { user: 'metrics', port: 9122 });
    const files = puts(plan);
    expect(files[redisDefaults]).toContain("REDIS_ADDR='redis://127.0.0.1:6379'");
    expect(files[redisDefaults]).toContain("REDIS_USER='metrics'");
    expect(files[redisDefaults]).toContain("REDIS_EXPORTER_WEB_LISTEN_ADDRESS=':9122'");
    expect(files[redisDefaults]).not.toMatch(/REDIS_PASSWORD=/);
    expect(files[dropInPath]).toContain('LoadCredential=redis-password:/etc/zanuri/redis/metrics.password');
    expect(kinds(plan)).toContain('systemctl daemon-reload');
    expect(redisExporter.serves?.(redisExporter.parseParams({}))).toEqual([expect.objectContaining({ port: 9121, access: 'internal' })]);
  });

  it('refuses Redis\'s own users, which have more rights than an exporter needs', () => {
    for (const user of ['admin', 'default', 'replica', 'sentinel']) expect(() => redisExporter.parseParams({ user })).toThrow(/least-privilege/);
  });

  it('grants no keys, no channels, and neither CONFIG GET (the replication password) nor SLOWLOG GET (data)', () => {
    const rules = exporterAclRules.split(' ');
    expect(rules[0]).toBe('-@all');
    expect(rules.filter((r) => /^[~%&]|allkeys|allchannels|^\+@/.test(r))).toEqual([]);
    expect(rules).not.toContain('+config|get');
    expect(rules).not.toContain('+slowlog|get');
    expect(rules).toContain('+info');
  });
});

describe('prometheus rules and alerting', () => {
  const planFor = (params: unknown): Plan => planOf(prometheus, { 'service:prometheus.service': 'enabled\nactive' }, params as Record<string, unknown>);

  it('installs zanuri\'s rules (checked by promtool check rules on the staged copy) and loads every *.yml of the rules folder', () => {
    const plan = planFor({});
    const rules = plan.actions.find((a) => a.kind === 'put' && a.path === rulesPath);
    expect(rules?.kind === 'put' && rules.validate?.argv).toEqual(['promtool', 'check', 'rules', '{}']);
    expect(puts(plan)[configPath]).toContain("rule_files:\n  - '/etc/prometheus/rules/*.yml'");
    expect(puts(plan)[configPath]).not.toContain('alerting:');
    const text = puts(plan)[rulesPath] ?? '';
    for (const alert of ['TargetDown', 'HostHighCpu', 'HostHighMemory', 'HostDiskSpaceLow', 'PostgresDown', 'RedisDown']) expect(text).toContain(`alert: ${alert}`);
    // seed 004's thresholds
    expect(text).toContain('instance:node_filesystem_avail:ratio < 0.2');
    expect(text).toContain('instance:node_cpu_utilisation:rate5m > 0.8');
  });

  it('sends alerts to the Alertmanagers given, and refuses one that is not host:port', () => {
    expect(puts(planFor({ alertmanagers: ['10.0.0.5:9093'] }))[configPath]).toContain("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets:\n            - '10.0.0.5:9093'\n");
    expect(() => prometheus.parseParams({ alertmanagers: ["a:1'\n  evil: x"] })).toThrow();
  });
});

describe('backups, as the monitoring server sees them', () => {
  it('tell the backup script when a run is overdue, from the schedule (the BackupOverdue alert compares with it)', () => {
    const bare: FactValues = { get: <T>(request: FactRequest<T>): T => request.parse('') };
    const conf = (schedule: string): string => puts(planStep(backups, bare, backups.parseParams({ schedule }), ctx))[backupsConf] ?? '';
    expect(conf('daily')).toMatch(/^MAX_AGE_SECONDS=93600$/m);
    expect(conf('*-*-* 02:30')).toMatch(/^MAX_AGE_SECONDS=93600$/m);
    expect(conf('hourly')).toMatch(/^MAX_AGE_SECONDS=7200$/m);
    expect(conf('weekly')).toMatch(/^MAX_AGE_SECONDS=691200$/m);
  });
});

describe('the shipped playbooks\' monitoring', () => {
  const dir = new URL('../../../playbooks/', import.meta.url);
  const playbooks = readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => ({ file: f, ...(parse(readFileSync(new URL(f, dir), 'utf8')) as { steps: Array<{ step: string; params?: Record<string, unknown> }> }) }));
  const has = (p: { steps: Array<{ step: string }> }, id: string): boolean => p.steps.some((s) => s.step === id);

  it('run node_exporter on every role\'s host (hardened and base are the audit and access baselines)', () => {
    expect(playbooks.filter((p) => !has(p, 'node-exporter') && !['hardened.yaml', 'base.yaml'].includes(p.file)).map((p) => p.file)).toEqual([]);
  });

  it('run postgres_exporter where PostgreSQL runs and redis_exporter where Redis runs, with the exporter\'s least-privilege user', () => {
    expect(playbooks.filter((p) => has(p, 'postgresql') && !has(p, 'postgres-exporter')).map((p) => p.file)).toEqual([]);
    const redisHosts = playbooks.filter((p) => has(p, 'redis'));
    expect(redisHosts.length).toBeGreaterThan(0);
    for (const p of redisHosts) {
      expect(has(p, 'redis-exporter'), p.file).toBe(true);
      const users = p.steps.find((s) => s.step === 'redis')?.params?.['users'] as Array<{ name: string; rules: string }> | undefined;
      expect(users?.find((u) => u.name === 'exporter')?.rules, p.file).toBe(exporterAclRules);
    }
  });

  it('run the DCGM exporter on the GPU server', () => {
    expect(playbooks.filter((p) => has(p, 'nvidia-driver') && !has(p, 'dcgm-exporter')).map((p) => p.file)).toEqual([]);
  });
});
