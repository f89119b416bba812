import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allSteps, stepById } from '../../../src/steps/index.js';

const folder = new URL('../../../src/steps/', import.meta.url);
const isStepLike = (value: unknown): value is { id: string } =>
  typeof value === 'object' && value !== null && typeof (value as { parseParams?: unknown }).parseParams === 'function' && typeof (value as { resources?: unknown }).resources === 'function';

describe('the step catalogue', () => {
  it('is the folder: each step lives in the module named after it, found without a list to edit', async () => {
    const modules = readdirSync(folder).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
    const declared: Array<[string, string]> = [];
    for (const name of modules) {
      const module = (await import(new URL(`${name}.ts`, folder).href)) as Record<string, unknown>;
      for (const value of Object.values(module).filter(isStepLike)) declared.push([name, value.id]);
    }
    // A step exported from a module of another name would never be found: every step is in its own module.
    expect(declared.filter(([module, id]) => module !== id)).toEqual([]);
    expect((await allSteps()).map((s) => s.id)).toEqual(declared.map(([, id]) => id).sort());
    expect(declared.map(([, id]) => id)).toContain('timesync');
  });

  it('loads one step by id, and names the known steps for an unknown one', async () => {
    expect((await stepById('timesync')).title).toBe('Time sync and timezone');
    await expect(stepById('nosuch')).rejects.toThrow(/unknown step "nosuch"/);
    await expect(stepById('../types')).rejects.toMatchObject({ hint: expect.stringMatching(/^known steps: .*deploy-user, .*timesync/) });
    await expect(stepById('types')).rejects.toThrow(/unknown step "types"/);
  });
});
