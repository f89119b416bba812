/**
 * Fleets against real SSH targets (needs root): an Ansible inventory drives check over many light
 * targets and provision over full systemd targets in parallel, with a failing host among them that
 * never stops the others; rolling batches stop when a batch fails too much; NDJSON events.
 * FLEET_FULL_TARGETS sets how many full targets to start (default 20: on 2 shared cores they start in about 22 s and converge in about 21 s).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const fullCount = Number(process.env['FLEET_FULL_TARGETS'] ?? 20);
const lightCount = 20;

interface Run { code: number; stdout: string; stderr: string; ms: number }

function zanuri(args: string[]): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 900_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr, ms: Math.round(performance.now() - started) });
    });
  });
}

interface HostJson { host: string; ok: boolean; summary: { changed: number; unchanged: number; failed: number }; steps: Array<{ id: string; status: string }>; error?: { code: string; message: string } }

describe.skipIf(!can.ok && !process.env['CI'])('a fleet from an Ansible inventory against real targets (needs root)', () => {
  let lights: TestTarget[];
  let fulls: TestTarget[];
  let dir: string;
  let inventory: string;
  /** The same fleet after ssh-harden: root may no longer log in, the servers are reached as deploy (sudo -n). */
  let asDeploy: string;
  let knownHosts: string;
  const access = (): string[] => ['-F', '/dev/null', '--known-hosts', knownHosts];

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    const started = performance.now();
    fulls = await startTargets(fullCount);
    lights = await startTargets(lightCount, { kind: 'light' });
    process.stderr.write(`fleet test: ${fullCount} full and ${lightCount} light targets started in ${Math.round((performance.now() - started) / 1000)} s\n`);
    dir = mkdtempSync(join(tmpdir(), 'zanuri-fleet-'));
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, [...fulls, ...lights].map((t) => t.knownHostsLine).join('\n') + '\n');
    // Hosts are named, not addressed: ansible_host carries the address, as in operators' inventories.
    const lines = (serversUser: string): string => [
      // A light target has no systemd: provisioning it fails after it connected. Named first, so it is in batch 1.
      '[broken]',
      `nosystemd ansible_host=${lights[0]?.host}`,
      '[servers]',
      ...fulls.map((t, i) => `srv${String(i + 1).padStart(2, '0')} ansible_host=${t.host}`),
      '[light]',
      ...lights.map((t, i) => `light${String(i + 1).padStart(2, '0')} ansible_host=${t.host}`),
      '[gone]',
      'ghost ansible_host=10.213.0.9',
      '[fleet:children]',
      'broken',
      'servers',
      '[servers:vars]',
      `ansible_user=${serversUser}`,
      'ansible_become=true',
      '[all:vars]',
      'ansible_user=root',
      `ansible_ssh_private_key_file=${fulls[0]?.privateKeyPath}`,
      '',
    ].join('\n');
    inventory = join(dir, 'hosts.ini');
    writeFileSync(inventory, lines('root'));
    asDeploy = join(dir, 'hosts-deploy.ini');
    writeFileSync(asDeploy, lines('deploy'));
  }, 900_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  it(`checks ${lightCount} light targets in parallel and reports the unreachable one without stopping the others`, async () => {
    const run = await zanuri(['check', '--json', ...access(), '--connect-timeout', '5', '--inventory', inventory, '--limit', 'light:gone']);
    const report = JSON.parse(run.stdout) as { hosts: HostJson[] };
    process.stderr.write(`fleet test: check of ${lightCount + 1} hosts took ${run.ms} ms\n`);
    expect(report.hosts.filter((h) => h.ok).map((h) => h.host)).toHaveLength(lightCount);
    expect(report.hosts.find((h) => h.host === 'ghost')).toMatchObject({ ok: false, error: { code: 'UNREACHABLE' } });
    expect(run.code).toBe(4);
  }, 300_000);

  it('lists the hosts a pattern selects and contacts none of them', async () => {
    const run = await zanuri(['provision', '--inventory', inventory, '--limit', 'fleet:!srv0[!1]', '--list-hosts']);
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split('\n').sort()).toEqual(['nosystemd', 'srv01', ...(fullCount >= 10 ? Array.from({ length: fullCount - 9 }, (_, i) => `srv${String(i + 10).padStart(2, '0')}`) : [])].sort());
  });

  it(`converges ${fullCount} full targets in parallel in four cells while a failing host fails alone`, async () => {
    const args = (file: string): string[] => ['provision', '--json', '--yes', ...access(), '--inventory', file, '--limit', 'fleet', '--playbook', 'base', '--set', `deploy-user.authorizedKeys=${JSON.stringify([fulls[0]?.publicKey])}`];
    const servers = (run: Run): HostJson[] => (JSON.parse(run.stdout) as { hosts: HostJson[] }).hosts.filter((h) => h.host !== 'nosystemd');
    const broken = (run: Run): HostJson | undefined => (JSON.parse(run.stdout) as { hosts: HostJson[] }).hosts.find((h) => h.host === 'nosystemd');
    const cells: Array<[string, Run]> = [];
    for (const [cell, file, extra] of [['dry run 1', inventory, ['--dry-run']], ['apply 1', inventory, []], ['dry run 2', asDeploy, ['--dry-run']], ['apply 2', asDeploy, []]] as const) {
      const run = await zanuri([...args(file), ...extra]);
      cells.push([cell, run]);
      expect(broken(run), cell).toMatchObject({ ok: false });
      expect(servers(run), cell).toHaveLength(fullCount);
      expect(servers(run).filter((h) => !h.ok).map((h) => `${h.host}: ${h.error?.message}`), cell).toEqual([]);
      expect(run.code, cell).toBe(2); // the host without systemd is a usage error; the others converge
    }
    const [dry1, apply1, dry2, apply2] = cells.map(([, run]) => servers(run)) as [HostJson[], HostJson[], HostJson[], HostJson[]];
    for (const h of dry1) expect(h.steps.map((s) => s.status), h.host).toContain('would-change');
    for (const h of apply1) expect(h.summary.changed, h.host).toBeGreaterThan(0);
    for (const h of dry2) expect(h.steps.filter((s) => s.status !== 'unchanged'), h.host).toEqual([]);
    for (const h of apply2) expect(h.summary.changed, h.host).toBe(0);
    process.stderr.write(`fleet test: ${fullCount} full targets + 1 failing host: ${cells.map(([c, r]) => `${c} ${(r.ms / 1000).toFixed(1)} s`).join(', ')}\n`);
    // The per-host lines and the fleet summary are what a person reads.
    const plain = await zanuri([...args(asDeploy).filter((a) => a !== '--json'), '--dry-run']);
    expect(plain.stderr).toMatch(/^nosystemd {2}FAILED {2}USAGE: /m);
    expect(plain.stderr).toMatch(/^srv01 {2}ok {2}0 would change, \d+ unchanged, 0 failed/m);
    expect(plain.stdout).toContain(`fleet: ${fullCount + 1} hosts: ${fullCount} ok, 1 failed (nosystemd), 0 not run; 0 steps would change`);
  }, 1_800_000);

  it('stops a rolling run after a batch fails more than --max-fail-percent, and says so in NDJSON events', async () => {
    const run = await zanuri(['provision', '--dry-run', '--json-events', ...access(), '--inventory', asDeploy, '--limit', 'fleet', '--playbook', 'base',
      '--set', `deploy-user.authorizedKeys=${JSON.stringify([fulls[0]?.publicKey])}`, '--serial', '2', '--max-fail-percent', '40']);
    const events = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; host?: string; stop?: string | null; batch?: number; notRun?: number; exitCode?: number });
    expect(events[0]).toMatchObject({ type: 'run-start' });
    const ended = events.filter((e) => e.type === 'host-end').map((e) => e.host);
    // The inventory lists the broken group first: batch 1 is nosystemd and srv01, half of it fails.
    expect(ended.sort()).toEqual(['nosystemd', 'srv01']);
    expect(events.find((e) => e.type === 'batch-end')).toMatchObject({ batch: 1, stop: expect.stringMatching(/stopped after batch 1: 1 of its 2 hosts failed \(more than 40%\)/) });
    // Not-run hosts count as failed (6); the host without systemd is a usage error (2), which ranks higher.
    expect(events.at(-1)).toMatchObject({ type: 'run-end', notRun: fullCount - 1, exitCode: 2 });
    expect(run.code).toBe(2);
  }, 600_000);
});
