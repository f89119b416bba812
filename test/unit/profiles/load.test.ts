import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { loadProfileFile, loadProfiles } from '../../../src/profiles/load.js';

const dir = mkdtempSync(join(tmpdir(), 'zanuri-profiles-'));
function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const header = (id: string): string => `id: ${id}\nsystem: Test\ntier: test\nrank: 1\ntitle: Test\nsource: test seed\n`;

async function errorOf(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('loading profiles', () => {
  it('loads every shipped profile, each with sourced requirements', async () => {
    const profiles = await loadProfiles();
    expect(profiles.length).toBeGreaterThanOrEqual(20);
    for (const p of profiles) {
      expect(p.requirements.length, p.id).toBeGreaterThan(0);
      for (const r of p.requirements) expect(r.source, `${p.id}/${r.id}`).toMatch(/^\d{3}_[0-9a-f]{16}\.txt § \S/);
    }
  });

  it('has a profile for every system and tier the seeds describe', async () => {
    const ids = (await loadProfiles()).map((p) => p.id);
    for (const id of ['zanuri-dev', 'zanuri-prod', 'aikovrr-minimum', 'aikovrr-recommended', 'aikovrr-ha-app', 'aikovrr-ha-db',
      'infra-api', 'infra-database', 'infra-redis', 'infra-monitoring', 'infra-loadbalancer', 'evolution-tier1',
      'arshai-core-min', 'arshai-docproc-min', 'arshai-vectordb-min', 'arshai-redis-min',
      'arshai-core-rec', 'arshai-docproc-rec', 'arshai-vectordb-rec', 'arshai-redis-rec', 'arshai-database-rec']) {
      expect(ids).toContain(id);
    }
  });

  it('lets a tier extend another: inherited requirements stay, same ids are replaced', async () => {
    const [dev] = await loadProfiles({ names: ['zanuri-dev'] });
    const [prod] = await loadProfiles({ names: ['zanuri-prod'] });
    const cores = (p: typeof prod) => p?.requirements.find((r) => r.id === 'cpu-cores');
    expect(cores(dev)).toMatchObject({ min: 8 });
    expect(cores(prod)).toMatchObject({ min: 16 });
    expect(prod?.requirements.some((r) => r.check === 'gpu.driver')).toBe(true);
  });

  it('reports malformed YAML with file:line:col', async () => {
    const file = write('broken.yaml', `${header('broken')}requirements:\n  - id: a\n    check: [unclosed\n`);
    const error = await errorOf(loadProfileFile(file));
    expect(error.location).toMatch(new RegExp(`^${file}:\\d+:\\d+$`));
    expect(error.message).toMatch(/malformed YAML/);
  });

  it('points an unknown key at its own line and column', async () => {
    const file = write('typo.yaml', `${header('typo')}requirements:\n  - id: cores\n    check: cpu.cores\n    level: required\n    min: 8\n    mni: 9\n    source: s\n`);
    const error = await errorOf(loadProfileFile(file));
    expect(error.location).toBe(`${file}:12:5`);
    expect(error.message).toMatch(/unknown key "mni"/);
    expect(error.hint).toMatch(/schema\.json/);
  });

  it('points a wrong type at the value', async () => {
    const file = write('type.yaml', `${header('type')}requirements:\n  - id: cores\n    check: cpu.cores\n    level: required\n    min: eight\n    source: s\n`);
    const error = await errorOf(loadProfileFile(file));
    expect(error.location).toBe(`${file}:11:10`);
  });

  it('refuses an unknown check', async () => {
    const file = write('check.yaml', `${header('check')}requirements:\n  - id: x\n    check: cpu.speed\n    level: required\n    source: s\n`);
    const error = await errorOf(loadProfileFile(file));
    expect(error.location).toMatch(new RegExp(`^${file}:9:`));
  });

  it('refuses a profile whose id is not its file name', async () => {
    const file = write('name.yaml', `${header('other')}requirements:\n  - id: cores\n    check: cpu.cores\n    level: required\n    min: 8\n    source: s\n`);
    expect((await errorOf(loadProfileFile(file))).message).toMatch(/does not match its file name/);
  });

  it('names the known profiles when asked for an unknown one', async () => {
    const error = await errorOf(loadProfiles({ names: ['zanuri-prd'] }));
    expect(error.message).toBe('unknown profile "zanuri-prd"');
    expect(error.hint).toContain('zanuri-prod');
  });

  it('loads a profile file of the user\'s that extends a shipped one', async () => {
    const file = write('site-gpu.yaml', `${header('site-gpu')}extends: zanuri-dev\nrequirements:\n  - id: cpu-cores\n    check: cpu.cores\n    level: required\n    min: 32\n    source: site policy\n`);
    const [profile] = await loadProfiles({ names: [file] });
    expect(profile?.requirements.find((r) => r.id === 'cpu-cores')).toMatchObject({ min: 32 });
    expect(profile?.requirements.some((r) => r.id === 'memory-total')).toBe(true);
  });

  it('detects profiles that extend each other in a cycle', async () => {
    const cycle = mkdtempSync(join(tmpdir(), 'zanuri-cycle-'));
    writeFileSync(join(cycle, 'a.yaml'), `${header('a')}extends: b\nrequirements: []\n`);
    writeFileSync(join(cycle, 'b.yaml'), `${header('b')}extends: a\nrequirements: []\n`);
    expect((await errorOf(loadProfiles({ dir: cycle }))).message).toMatch(/cycle/);
  });
});
