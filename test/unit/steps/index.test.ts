import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allSteps, stepById } from '../../../src/steps/index.js';

const folder = new URL('../../../src/steps/', import.meta.url);
/** Modules of src/steps that hold what steps share, not a step. */
const shared = ['access', 'docs', 'index', 'nginx-shared', 'plan', 'schema', 'types'];

describe('the step catalogue', () => {
  it('is the folder: every module named after the step it exports, found without a list to edit', async () => {
    const modules = readdirSync(folder).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).filter((n) => !shared.includes(n)).sort();
    expect((await allSteps()).map((s) => s.id)).toEqual(modules);
    expect(modules).toContain('timesync');
  });

  it('loads one step by id, and names the known steps for an unknown one', async () => {
    expect((await stepById('timesync')).title).toBe('Time sync and timezone');
    await expect(stepById('nosuch')).rejects.toThrow(/unknown step "nosuch"/);
    await expect(stepById('../types')).rejects.toMatchObject({ hint: expect.stringContaining('deploy-user, fail2ban') });
    await expect(stepById('types')).rejects.toThrow(/unknown step "types"/);
  });
});
