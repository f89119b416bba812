#!/usr/bin/env node
/**
 * npm run build, last part: zanuri bundled and minified by esbuild, twice from the same sources:
 *
 * - dist/bundle/zanuri.mjs, one file: what first boot ships (zanuri cloud-init's archive);
 * - dist/lazy/zanuri.mjs plus chunks beside it (code splitting): what bin/zanuri.js runs. Node 20
 *   parses and runs all of a file it imports, so the one file costs its 1.4 MB on every start
 *   (`--help` 119 ms against 81 ms for the tsc output); split, a start loads only the small entry
 *   and the chunks of the command it runs (the CLI imports each command's code lazily already),
 *   which is faster than the tsc output: one file per shared chunk instead of one per module.
 *
 * Both sit two folders below the package root like dist/cli/main.js, so what the code finds
 * relative to itself (package.json, templates/, profiles/, playbooks/, dist/profiles.bundle.json)
 * resolves the same in all three. The unbundled tsc output stays what the tests import.
 *
 * The step catalogue is a folder read at run time (src/steps/index.ts: readdir + import()); a
 * bundle has no folder, so a plugin replaces that module with one generated from the folder at
 * build time: one lazy import() per step file. Adding a step still needs only its file.
 */
import { readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stepsDir = join(root, 'src', 'steps');
export const outfile = join(root, 'dist', 'bundle', 'zanuri.mjs');
/** The split build's entry; its chunks are chunk-<hash>.mjs beside it. */
export const lazyDir = join(root, 'dist', 'lazy');
export const lazyEntry = join(lazyDir, 'zanuri.mjs');

/** src/steps/index.ts with readdir replaced by the folder's listing at build time. */
export function stepCatalogueSource() {
  const original = readFileSync(join(stepsDir, 'index.ts'), 'utf8');
  const idPattern = /^[a-z][a-z0-9-]{0,63}$/;
  const ids = readdirSync(stepsDir).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => f.slice(0, -3)).filter((n) => idPattern.test(n) && n !== 'index');
  const table = ids.map((id) => `  ${JSON.stringify(id)}: () => import(${JSON.stringify(`./${id}.ts`)}),`).join('\n');
  // Keep every export of the original except how modules are found: the two functions that touch the folder.
  if (!original.includes('async function load(') || !original.includes('export async function allSteps(')) {
    throw new Error('scripts/bundle.mjs: src/steps/index.ts no longer has load() and allSteps(); update the catalogue plugin');
  }
  return `import { ConfigError } from '../core/errors.js';
const modules = {
${table}
};
const idPattern = /^[a-z][a-z0-9-]{0,63}$/;
function isStep(value, id) {
  return typeof value === 'object' && value !== null && value.id === id && typeof value.parseParams === 'function' && typeof value.resources === 'function';
}
async function load(id) {
  const get = Object.prototype.hasOwnProperty.call(modules, id) ? modules[id] : undefined;
  if (!get) return null;
  const module = await get();
  return Object.values(module).find((value) => isStep(value, id)) ?? null;
}
export async function allSteps() {
  const loaded = await Promise.all(Object.keys(modules).map(load));
  return loaded.filter((s) => s !== null).sort((a, b) => a.id.localeCompare(b.id));
}
export async function stepById(id) {
  const step = idPattern.test(id) ? await load(id) : null;
  if (step) return step;
  throw new ConfigError(\`unknown step "\${JSON.stringify(id).slice(1, -1)}"\`, { hint: \`known steps: \${(await allSteps()).map((s) => s.id).join(', ')}\` });
}
`;
}

export const stepCatalogue = {
  name: 'zanuri-step-catalogue',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/]steps[\\/]index\.ts$/ }, () => ({ contents: stepCatalogueSource(), loader: 'ts', resolveDir: stepsDir }));
  },
};

/**
 * @inquirer/prompts re-exports every prompt; its `editor` prompt alone pulls in iconv-lite and
 * chardet (half the bundle). zanuri never opens an editor, so the bundle gets a stub that says so.
 */
export const noEditorPrompt = {
  name: 'zanuri-no-editor-prompt',
  setup(b) {
    b.onResolve({ filter: /^@inquirer\/editor$/ }, () => ({ path: 'inquirer-editor-stub', namespace: 'zanuri-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'zanuri-stub' }, () => ({
      contents: "export default function editor() { throw new Error('the editor prompt is not part of the zanuri bundle'); }",
      loader: 'js',
    }));
  },
};

const common = {
  bundle: true,
  minify: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  legalComments: 'linked',
  // ssh2's optional native crypto binding: it falls back to JavaScript when the require fails.
  external: ['*.node'],
  // CommonJS dependencies call require() for Node's built-ins and read __dirname/__filename (ssh2's
  // poly1305 and pageant modules do, at load time): an ESM bundle needs all three, in every chunk.
  banner: {
    js: "import { createRequire as __zanuriCreateRequire } from 'node:module'; import { fileURLToPath as __zanuriFileUrlToPath } from 'node:url'; import { dirname as __zanuriDirname } from 'node:path'; " +
      'const require = __zanuriCreateRequire(import.meta.url); const __filename = __zanuriFileUrlToPath(import.meta.url); const __dirname = __zanuriDirname(__filename);',
  },
  plugins: [stepCatalogue, noEditorPrompt],
  logLevel: 'warning',
  metafile: true,
};

/**
 * Both builds; resolves [one file, split]. The split build is written to a fresh folder that then
 * replaces dist/lazy (chunk names change with their content, and a bin started meanwhile finds
 * either a whole build or none, then runs the tsc output).
 */
export async function bundle() {
  const entry = join(root, 'src', 'cli', 'main.ts');
  const fresh = `${lazyDir}.${process.pid}.tmp`;
  rmSync(fresh, { recursive: true, force: true });
  const built = await Promise.all([
    build({ ...common, entryPoints: [entry], outfile }),
    build({ ...common, entryPoints: { zanuri: entry }, outdir: fresh, splitting: true, chunkNames: 'chunk-[hash]', outExtension: { '.js': '.mjs' } }),
  ]).catch((error) => {
    rmSync(fresh, { recursive: true, force: true });
    throw error;
  });
  rmSync(lazyDir, { recursive: true, force: true });
  renameSync(fresh, lazyDir);
  return built;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = Date.now();
  await bundle();
  process.stderr.write(`bundled ${outfile} and ${lazyEntry} (split) in ${Date.now() - t0} ms\n`);
}
