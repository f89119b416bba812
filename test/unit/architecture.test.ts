import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTree, findCycles, type Violations } from '../helpers/architecture.js';

const src = fileURLToPath(new URL('../../src/', import.meta.url));

describe('the source layout of src/', () => {
  const found = checkTree(src);

  it('imports only downwards between folders', () => {
    expect(found.wrongDirection).toEqual([]);
  });

  it('has no import cycle between files', () => {
    expect(found.cycles).toEqual([]);
  });

  it('keeps each third-party package to the folder that owns it', () => {
    expect(found.foreignPackages).toEqual([]);
  });

  it('prints, exits and sets the exit code only in cli/', () => {
    expect(found.printsOutsideCli).toEqual([]);
  });

  it('never lets one step import another step', () => {
    expect(found.stepImportsStep).toEqual([]);
  });
});

/**
 * A tree with exactly one planted violation per rule, next to look-alikes that are allowed (a
 * step importing shared modules, cli/ printing, `process.exit` in a comment or a string, owned
 * packages, node: built-ins). Each check must report the planted violation and nothing else.
 */
const badTree: Record<string, string> = {
  // Printing outside cli/.
  'engine/report.ts': "export function report(line: string): void {\n  process.stdout.write(`${line}\\n`);\n}\n",
  // A facts file importing steps, through a multi-line type-only import.
  'facts/os.ts': "import type {\n  Raw,\n} from '../steps/params.js';\nexport const parse = (raw: Raw): Raw => raw;\n",
  // A two-file cycle: a multi-line import one way, a dynamic import back.
  'core/a.ts': "import {\n  b,\n  type B,\n} from './b.js';\nexport const a = (): B => b;\n",
  'core/b.ts': "export type B = number;\nexport const b: B = 1;\nexport const later = async (): Promise<unknown> => (await import('./a.js')).a;\n",
  // A core file importing execa.
  'core/run.ts': "import { execa } from 'execa';\nexport const run = (file: string): unknown => execa(file);\n",
  // process.exit, process.exitCode and console.log outside cli/ (bench is otherwise clean).
  'bench/stop.ts': "export function stop(failed: boolean): void {\n  console.log('stopping');\n  process.exitCode = failed ? 1 : 0;\n  if (failed) process.exit(1);\n}\n",
  // Look-alikes that are allowed: a comment and a string that name process.exit, env reads.
  'bench/quiet.ts': "// never process.exit() or console.log here: only cli/ prints\nexport const advice = 'use process.stdout.write in cli/';\nexport const home = process.env['HOME'];\n",
  // Steps: shared modules are fine; a step importing another step is not.
  'steps/types.ts': "import type { Raw } from './params.js';\nexport interface Step<P> { id: string; parseParams(raw: Raw): P }\nexport function defineStep<P>(step: Step<P>): Step<P> {\n  return step;\n}\n",
  'steps/params.ts': "export type Raw = Record<string, unknown>;\n",
  'steps/schema.ts': "import { Type } from '@sinclair/typebox';\nexport const Name = Type.String();\n",
  'steps/a.ts': "import { defineStep } from './types.js';\nimport { Name } from './schema.js';\nimport { b } from './b.js';\nexport const a = defineStep({ id: 'a', parseParams: () => [Name, b.id] });\n",
  'steps/b.ts': "import type { Step } from './types.js';\nimport type { Raw } from './params.js';\nexport const b: Step<Raw> = { id: 'b', parseParams: (raw) => raw as Raw };\n",
  'steps/index.ts': "export { a } from './a.js';\nexport { b } from './b.js';\n",
  // Owned packages and node: built-ins in their places; cli/ may print and set the exit code.
  'transport/local.ts': "import { execa } from 'execa';\nimport { readFileSync } from 'node:fs';\nexport const local = { execa, readFileSync };\n",
  'cli/main.ts': "import { Command } from 'commander';\nimport { report } from '../engine/report.js';\nimport { stop } from '../bench/stop.js';\nnew Command();\nreport('x');\nstop(false);\nconsole.log('done');\nprocess.stdout.write('ok\\n');\nprocess.exitCode = 0;\n",
};

describe('the layout checks, fed a tree with one planted violation each', () => {
  let root: string;
  let found: Violations;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'zanuri-architecture-'));
    for (const [path, text] of Object.entries(badTree)) {
      mkdirSync(dirname(join(root, 'src', path)), { recursive: true });
      writeFileSync(join(root, 'src', path), text);
    }
    found = checkTree(join(root, 'src'));
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('reports the facts file that imports steps, even through a multi-line import type', () => {
    expect(found.wrongDirection).toEqual(['facts/os.ts -> ../steps/params.js (steps)']);
  });

  it('reports the two-file cycle, closed by a dynamic import', () => {
    expect(found.cycles).toEqual([['core/a.ts', 'core/b.ts']]);
  });

  it('reports execa imported in core/', () => {
    expect(found.foreignPackages).toEqual(['core/run.ts imports execa (owned by transport)']);
  });

  it('reports stdout writes, console, process.exit and process.exitCode outside cli/, and nothing in comments or strings', () => {
    expect(found.printsOutsideCli).toEqual([
      'bench/stop.ts:2 console.log',
      'bench/stop.ts:3 process.exitCode',
      'bench/stop.ts:4 process.exit',
      'engine/report.ts:2 process.stdout',
    ]);
  });

  it('reports the step that imports another step, and not its imports of shared modules', () => {
    expect(found.stepImportsStep).toEqual(['steps/a.ts -> steps/b.ts']);
  });
});

describe('findCycles', () => {
  it('finds a file that imports itself and a three-file ring, and nothing in a diamond', () => {
    const graph = new Map<string, Set<string>>([
      ['self.ts', new Set(['self.ts'])],
      ['r1.ts', new Set(['r2.ts'])], ['r2.ts', new Set(['r3.ts'])], ['r3.ts', new Set(['r1.ts'])],
      ['top.ts', new Set(['left.ts', 'right.ts'])], ['left.ts', new Set(['bottom.ts'])], ['right.ts', new Set(['bottom.ts'])], ['bottom.ts', new Set()],
    ]);
    expect(findCycles(graph)).toEqual([['r1.ts', 'r2.ts', 'r3.ts'], ['self.ts']]);
  });
});
