#!/usr/bin/env node
/**
 * npm's prepare: build, unless the last build is newer than every source it was made from.
 *
 * `npx zanuri` in a checkout (npm 7+) does not run node_modules/.bin: it installs the checkout
 * into its own cache as a link and runs prepare there, on the first run of every fresh npx cache.
 * With an unconditional build that first command took about 14 s; with this check, after
 * `npm install` has built once, it costs the check.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Not package-lock.json: npm install may write it after prepare has built.
const inputs = ['src', 'profiles', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];

function newest(path) {
  if (!existsSync(path)) return 0;
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  return readdirSync(path).reduce((m, name) => Math.max(m, newest(join(path, name))), info.mtimeMs);
}

// The first and the last things npm run build writes (the bin runs the split bundle).
const outputs = [join(root, 'dist', 'cli', 'main.js'), join(root, 'dist', 'bundle', 'zanuri.mjs'), join(root, 'dist', 'lazy', 'zanuri.mjs')];
const built = outputs.every((f) => existsSync(f)) ? Math.min(...outputs.map((f) => statSync(f).mtimeMs)) : 0;
if (built > 0 && built >= Math.max(...inputs.map((p) => newest(join(root, p))))) {
  process.stderr.write('zanuri: the build is newer than its sources; not building again\n');
} else {
  const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
  const result = spawnSync(npm[0], [...npm.slice(1), 'run', 'build'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
