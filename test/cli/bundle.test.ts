/**
 * The one-file bundle (npm run build's dist/bundle/zanuri.mjs, built here with the same script):
 * it runs on its own, and its step catalogue, generated from src/steps/ at build time, holds exactly
 * the steps the folder does, so adding a step still needs only its file.
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { allSteps } from '../../src/steps/index.js';
// @ts-expect-error: a plain ESM build script without types
import { bundle, outfile } from '../../scripts/bundle.mjs';

interface Run { code: number; stdout: string; stderr: string }

function run(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [outfile as string, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

beforeAll(async () => {
  await bundle();
}, 120_000);

describe('the bundled zanuri', () => {
  it('is one minified file that prints its help and version', async () => {
    expect(statSync(outfile as string).size).toBeGreaterThan(100_000);
    const help = await run('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Commands:[\s\S]*check[\s\S]*provision[\s\S]*cloud-init[\s\S]*init/);
  });

  it('knows every step of src/steps/, and no other', async () => {
    // An unknown step's error lists the known ones: the bundle's own catalogue.
    const r = await run('provision', '--playbook', 'base', '--local', '--dry-run', '--set', 'no-such-step.x=1');
    expect(r.code).toBe(2);
    const listed = /known steps: (.*)/.exec(r.stderr)?.[1]?.split(', ') ?? [];
    expect(listed).toEqual((await allSteps()).map((s) => s.id));
  });

  it('validates a playbook against the steps\' schemas as the unbundled CLI does', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdCBhIHJlYWwga2V5IGJ1dCB3ZWxsIGZvcm1lZA op@example';
    const r = await run('provision', '--playbook', 'base', '--local', '--dry-run', '--set', `deploy-user.authorizedKeys=${JSON.stringify([key])}`, '--set', 'ssh-harden.maxAuthTries="three"');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/maxAuthTries must be a whole number/);
  });
});
