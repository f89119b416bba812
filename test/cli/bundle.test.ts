/**
 * The bundles (npm run build's dist/bundle/zanuri.mjs and the split dist/lazy/, built here with the
 * same script): the one file runs on its own, and its step catalogue, generated from src/steps/ at
 * build time, holds exactly the steps the folder does, so adding a step still needs only its file.
 * The bin runs the split build, which loads only what the command needs, and the tsc output when
 * the bundle is older than it (stale).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { allSteps } from '../../src/steps/index.js';
// @ts-expect-error: a plain ESM build script without types
import { bundle, lazyDir, lazyEntry, outfile } from '../../scripts/bundle.mjs';

interface Run { code: number; stdout: string; stderr: string }

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'bin', 'zanuri.js');
const tscMain = join(root, 'dist', 'cli', 'main.js');

/**
 * A package tree with the bin and the split build only (no tsc output, so nothing can make the
 * bundle look stale while other work rebuilds dist/cli/): what the bin loads there is the bundle's.
 */
function bundledTree(): { dir: string; bin: string; lazyDir: string; lazyEntry: string } {
  const dir = mkdtempSync(join(tmpdir(), 'zanuri-bundled-'));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(bin, join(dir, 'bin', 'zanuri.js'));
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  cpSync(lazyDir as string, join(dir, 'dist', 'lazy'), { recursive: true });
  copyFileSync(join(root, 'dist', 'profiles.bundle.json'), join(dir, 'dist', 'profiles.bundle.json'));
  for (const folder of ['profiles', 'playbooks', 'templates']) symlinkSync(join(root, folder), join(dir, folder));
  return { dir, bin: join(dir, 'bin', 'zanuri.js'), lazyDir: join(dir, 'dist', 'lazy'), lazyEntry: join(dir, 'dist', 'lazy', 'zanuri.mjs') };
}

function runFile(file: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [file, ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}
const run = (...args: string[]): Promise<Run> => runFile(outfile as string, args);

/** The files Node loaded for a run, from its own module-loader debug log. */
async function loadedFiles(file: string, args: string[]): Promise<{ run: Run; files: string[] }> {
  const r = await runFile(file, args, { NODE_DEBUG: 'esm' });
  const files = [...new Set([...r.stderr.matchAll(/Storing (file:\/\/\S+)/g)].map((m) => fileURLToPath(m[1] as string)))];
  return { run: r, files };
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

describe('the bin', () => {
  it('runs the split bundle, which loads a small part of zanuri for --help and prints what the tsc output prints', async () => {
    const tree = bundledTree();
    const { run: help, files } = await loadedFiles(tree.bin, ['--help']);
    expect(help.code).toBe(0);
    expect(files).toContain(tree.lazyEntry);
    expect(files.filter((f) => !f.startsWith(tree.dir))).toEqual([]);
    const fromBundle = files.filter((f) => f.startsWith(tree.lazyDir)).reduce((n, f) => n + statSync(f).size, 0);
    // Everything the split build holds, against what a --help start reads of it.
    const whole = readdirSync(tree.lazyDir).filter((f) => f.endsWith('.mjs')).reduce((n, f) => n + statSync(join(tree.lazyDir, f)).size, 0);
    expect(fromBundle).toBeLessThan(whole / 10);
    const tsc = await runFile(tscMain, ['--help']);
    expect(help.stdout).toBe(tsc.stdout);
    rmSync(tree.dir, { recursive: true, force: true });
  });

  it('loads a command\'s code when the command runs: a local check loads the chunks it needs and reports', async () => {
    const tree = bundledTree();
    const { run: check, files } = await loadedFiles(tree.bin, ['check', '--json']);
    expect([0, 3]).toContain(check.code);
    expect(JSON.parse(check.stdout)).toMatchObject({ schemaVersion: 1, hosts: [expect.objectContaining({})] });
    expect(files.filter((f) => f.startsWith(tree.lazyDir)).length).toBeGreaterThan(2);
    expect(files.filter((f) => !f.startsWith(tree.dir))).toEqual([]);
    rmSync(tree.dir, { recursive: true, force: true });
  });

  it('runs the tsc output instead when the bundle is older than it or missing', async () => {
    // A copy of the bin in a tree whose two builds say which one ran.
    const fake = mkdtempSync(join(tmpdir(), 'zanuri-bin-'));
    for (const dir of ['bin', 'dist/cli', 'dist/lazy']) mkdirSync(join(fake, dir), { recursive: true });
    copyFileSync(bin, join(fake, 'bin', 'zanuri.js'));
    writeFileSync(join(fake, 'package.json'), '{"type":"module"}\n');
    writeFileSync(join(fake, 'dist', 'cli', 'main.js'), "console.log('tsc output');\n");
    const which = async (): Promise<string> => (await runFile(join(fake, 'bin', 'zanuri.js'), [])).stdout.trim();
    expect(await which()).toBe('tsc output');
    writeFileSync(join(fake, 'dist', 'lazy', 'zanuri.mjs'), "console.log('bundle');\n");
    const at = (file: string, seconds: number): void => utimesSync(join(fake, file), seconds, seconds);
    at('dist/cli/main.js', 1_000_000); at('dist/lazy/zanuri.mjs', 2_000_000);
    expect(await which()).toBe('bundle');
    at('dist/cli/main.js', 3_000_000);
    expect(await which()).toBe('tsc output');
    // npm pack gives every file the same time: equal is not stale.
    at('dist/lazy/zanuri.mjs', 3_000_000);
    expect(await which()).toBe('bundle');
    rmSync(fake, { recursive: true, force: true });
  });
});
