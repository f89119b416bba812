import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../../src/', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

const importPattern = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g;

function imports(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(importPattern)].map((m) => m[1] ?? m[2] ?? '').filter(Boolean);
}

const layer = (file: string): string => relative(src, file).split('/')[0] ?? '';

/** Which src folders each folder may import (besides itself). */
const allowed: Record<string, string[]> = {
  core: [],
  transport: ['core'],
  facts: ['core'],
  profiles: ['core', 'facts'],
  inventory: ['core', 'facts'],
  steps: ['core', 'facts'],
  bench: ['core', 'facts', 'profiles'],
  engine: ['core', 'transport', 'facts', 'profiles', 'steps', 'inventory', 'bench'],
  cli: ['core', 'transport', 'facts', 'profiles', 'steps', 'inventory', 'bench', 'engine'],
};

/** The one folder that may import each third-party package. */
const owners: Record<string, string> = {
  execa: 'transport', 'node-ssh': 'transport', yaml: 'profiles', ajv: 'profiles',
  commander: 'cli', chalk: 'cli', '@inquirer/prompts': 'cli', listr2: 'cli', diff: 'engine',
};

describe('the source layout', () => {
  const all = files(src);

  it('imports only downwards between folders', () => {
    const wrong: string[] = [];
    for (const file of all) {
      for (const spec of imports(file).filter((s) => s.startsWith('.'))) {
        const target = layer(resolve(dirname(file), spec));
        const from = layer(file);
        if (target !== from && !(allowed[from] ?? []).includes(target)) wrong.push(`${relative(src, file)} -> ${spec}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('keeps each third-party package to the folder that owns it', () => {
    const wrong: string[] = [];
    for (const file of all) {
      for (const spec of imports(file).filter((s) => !s.startsWith('.') && !s.startsWith('node:'))) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0] ?? spec;
        if (owners[name] !== layer(file)) wrong.push(`${relative(src, file)} imports ${name}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('prints and exits only in cli/', () => {
    const wrong = all.filter((f) => layer(f) !== 'cli' && /console\.(log|error)|process\.exit\(/.test(readFileSync(f, 'utf8')));
    expect(wrong.map((f) => relative(src, f))).toEqual([]);
  });
});
