import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));

interface Run { code: number; stdout: string; stderr: string }

function zanuri(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { env: { ...process.env, NO_COLOR: '' }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('zanuri check on this machine', () => {
  it('surveys every profile, reads the facts in one round trip and exits 0', async () => {
    const run = await zanuri('check', '--json');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.schemaVersion).toBe(1);
    const [host] = report.hosts;
    expect(host).toMatchObject({ host: 'local', ok: true, roundTrips: 1 });
    expect(host.facts.cpu.threads).toBe(cpus().length);
    expect(host.profiles.length).toBeGreaterThanOrEqual(20);
    expect(host.tiers.map((t: { system: string }) => t.system)).toEqual(expect.arrayContaining(['ZaNuri', 'AIKovrr', 'Arshai']));
  });

  it('exits 3 when a named profile has a failing requirement, and names it', async () => {
    // A 2-core development VM cannot meet the 16-core production tier.
    const run = await zanuri('check', '--profile', 'zanuri-prod');
    expect(run.code).toBe(3);
    expect(run.stdout).toMatch(/FAIL\s+cpu-cores\s+>= 16 cores/);
  });

  it('prints no colour codes when stdout is not a terminal', async () => {
    const run = await zanuri('check', '--profile', 'aikovrr-minimum');
    expect(run.stdout).not.toMatch(/\x1b\[/);
    expect(run.stdout).toContain('aikovrr-minimum');
  });
});

describe('zanuri check refuses bad input before doing anything', () => {
  it('exits 2 for an unknown profile and lists the known ones', async () => {
    const run = await zanuri('check', '--profile', 'zanuri-prd');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown profile "zanuri-prd"');
    expect(run.stderr).toContain('zanuri-prod');
  });

  it('reports a malformed profile with file:line:col and never connects to the host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'id: bad\nsystem: X\n  tier: [\n');
    // Port 1 on loopback refuses at once: had zanuri connected, it would exit 4, not 2.
    const run = await zanuri('check', '--profile', file, '--host', 'root@127.0.0.1:1');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`${file}:\\d+:\\d+: malformed YAML`));
  });

  it('refuses hostile host names with exit 2', async () => {
    for (const host of ['a;reboot', '$(id)', 'x\nreboot', '-oProxyCommand=id']) {
      const run = await zanuri('check', '--host', host);
      expect(run.code, host).toBe(2);
      expect(run.stderr).toMatch(/is not a host/);
    }
  });

  it('exits 2 for an unknown command, a bad option value or a missing key file', async () => {
    expect((await zanuri('frobnicate')).code).toBe(2);
    expect((await zanuri('check', '--concurrency', '0')).code).toBe(2);
    const missing = await zanuri('check', '--host', 'root@127.0.0.1:1', '--identity', '/nonexistent/key');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('/nonexistent/key');
  });

  it('exits 4 with a clear message when the host refuses the connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-cli-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
    const run = await zanuri('check', '--host', 'root@127.0.0.1:1', '--identity', join(dir, 'id'), '--json');
    expect(run.code).toBe(4);
    const report = JSON.parse(run.stdout);
    expect(report.hosts[0]).toMatchObject({ ok: false, error: { code: 'UNREACHABLE' } });
    expect(report.hosts[0].error.message).toMatch(/cannot reach root@127\.0\.0\.1:1: ECONNREFUSED/);
  });

  it('answers --help and --version with exit 0', async () => {
    expect((await zanuri('--help')).code).toBe(0);
    expect((await zanuri('--version')).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('the build-time profile bundle', () => {
  it('is not trusted once a shipped profile is edited: the edit is parsed and its error reported', async () => {
    const { cpSync, symlinkSync, appendFileSync } = await import('node:fs');
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const copy = mkdtempSync(join(tmpdir(), 'zanuri-pkg-'));
    for (const part of ['bin', 'dist', 'profiles', 'package.json']) cpSync(join(root, part), join(copy, part), { recursive: true, preserveTimestamps: true });
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
    const run = (): Promise<Run> => new Promise((resolve) => {
      execFile('node', [join(copy, 'bin/zanuri.js'), 'check', '--profile', 'zanuri-dev', '--json'], (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr }));
    });
    expect([0, 3]).toContain((await run()).code);
    appendFileSync(join(copy, 'profiles/zanuri-dev.yaml'), 'unexpected_key: 1\n');
    const edited = await run();
    expect(edited.code).toBe(2);
    expect(edited.stderr).toMatch(/zanuri-dev\.yaml:\d+:\d+: unknown key "unexpected_key"/);
  });
});
