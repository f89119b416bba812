/**
 * The layering rules of src/ as functions over a source root, so a test can run them on the real
 * tree and on a planted bad tree (proof that each check can fail).
 *
 * Sources are read with the TypeScript parser, not with regular expressions: multi-line imports,
 * `import type`, `export ... from`, `import('...')` and `import('...').T` types are all syntax
 * nodes, and text inside comments or strings never counts as an import, a print or a step.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** Which src folders each folder may import (besides itself). */
export const allowedImports: Readonly<Record<string, readonly string[]>> = {
  core: [],
  transport: ['core'],
  facts: ['core'],
  templates: ['core'],
  resources: ['core', 'facts'],
  profiles: ['core', 'facts'],
  inventory: ['core', 'facts'],
  steps: ['core', 'facts', 'resources'],
  bench: ['core', 'facts', 'profiles'],
  engine: ['core', 'transport', 'facts', 'profiles', 'steps', 'resources', 'templates', 'inventory', 'bench'],
  cli: ['core', 'transport', 'facts', 'templates', 'resources', 'profiles', 'inventory', 'steps', 'bench', 'engine'],
};

/** The one folder that may import each third-party package. `node:` built-ins are free. */
export const packageOwners: Readonly<Record<string, string>> = {
  execa: 'transport', 'node-ssh': 'transport',
  yaml: 'profiles', ajv: 'profiles',
  commander: 'cli', chalk: 'cli', '@inquirer/prompts': 'cli', listr2: 'cli',
  diff: 'engine',
  mustache: 'templates',
  '@sinclair/typebox': 'steps',
};

/** The folder whose files may print and set the exit code. */
export const printingLayer = 'cli';

export interface Violations {
  /** `from.ts -> spec (to-layer)`: a relative import that goes against the layer order or leaves src/. */
  wrongDirection: string[];
  /** Each import cycle among files, as the sorted files of one strongly connected component. */
  cycles: string[][];
  /** `file imports pkg`: a third-party package used outside the folder that owns it (or owned by none). */
  foreignPackages: string[];
  /** `file:line what`: stdout/stderr/console writes, process.exit or process.exitCode outside cli/. */
  printsOutsideCli: string[];
  /** `steps/a.ts -> steps/b.ts`: a file that defines a step imports another file that defines one. */
  stepImportsStep: string[];
}

interface Import { spec: string; line: number }

interface SourceInfo {
  file: string;
  imports: Import[];
  prints: string[];
  definesStep: boolean;
}

export function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : /\.(?:c|m)?tsx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []))
    .sort();
}

const stepTypeNames = new Set(['Step', 'AnyStep']);
const processMembers = new Set(['stdout', 'stderr', 'exit', 'exitCode']);

/** `Step<P>`, `AnyStep` or `steps.Step<P>` as a type node. */
function isStepType(type: ts.TypeNode | undefined): boolean {
  if (!type || !ts.isTypeReferenceNode(type)) return false;
  const name = ts.isIdentifier(type.typeName) ? type.typeName.text : type.typeName.right.text;
  return stepTypeNames.has(name);
}

/** `defineStep(...)`, `x satisfies Step<P>` or `x as Step<P>` (parentheses unwrapped). */
function isStepExpression(e: ts.Expression | undefined): boolean {
  while (e && ts.isParenthesizedExpression(e)) e = e.expression;
  if (!e) return false;
  if (ts.isCallExpression(e)) {
    const callee = e.expression;
    return (ts.isIdentifier(callee) && callee.text === 'defineStep') || (ts.isPropertyAccessExpression(callee) && callee.name.text === 'defineStep');
  }
  if (ts.isSatisfiesExpression(e) || ts.isAsExpression(e)) return isStepType(e.type) || isStepExpression(e.expression);
  return false;
}

/** The literal text of a property name in `process.x`, `process['x']`, `{ x } = process`. */
function memberName(node: ts.Node): string | null {
  if (ts.isPropertyAccessExpression(node)) return node.name.text;
  if (ts.isElementAccessExpression(node) && ts.isStringLiteralLike(node.argumentExpression)) return node.argumentExpression.text;
  return null;
}

export function readSource(file: string): SourceInfo {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const line = (n: ts.Node): number => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const imports: Import[] = [];
  const prints: string[] = [];
  let definesStep = false;

  const visit = (node: ts.Node): void => {
    // import x from 'm'; import type { T } from 'm'; import 'm'
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      imports.push({ spec: node.moduleSpecifier.text, line: line(node) });
      const spec = node.moduleSpecifier.text;
      // import { stdout, exit } from 'node:process' / import console from 'node:console'
      const bindings = node.importClause?.namedBindings;
      if (/^(?:node:)?process$/.test(spec) && bindings && ts.isNamedImports(bindings)) {
        for (const el of bindings.elements) {
          const name = (el.propertyName ?? el.name).text;
          if (processMembers.has(name)) prints.push(`${line(node)} process.${name}`);
        }
      }
      if (/^(?:node:)?console$/.test(spec) && node.importClause) prints.push(`${line(node)} console`);
    }
    // export { x } from 'm'; export * from 'm'; export type { T } from 'm'
    if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      imports.push({ spec: node.moduleSpecifier.text, line: line(node) });
    }
    // import x = require('m')
    if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      imports.push({ spec: node.moduleReference.expression.text, line: line(node) });
    }
    // await import('m')
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) imports.push({ spec: arg.text, line: line(node) });
    }
    // type T = import('m').X
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      imports.push({ spec: node.argument.literal.text, line: line(node) });
    }
    // process.stdout / process.stderr / process.exit / process.exitCode / console.anything
    if (ts.isPropertyAccessExpression(node) || ts.isElementAccessExpression(node)) {
      const name = memberName(node);
      const target = node.expression;
      if (name !== null && ts.isIdentifier(target)) {
        if (target.text === 'process' && processMembers.has(name)) prints.push(`${line(node)} process.${name}`);
        if (target.text === 'console') prints.push(`${line(node)} console.${name}`);
      }
    }
    // const { stdout, exit } = process
    if (ts.isVariableDeclaration(node) && ts.isObjectBindingPattern(node.name) && node.initializer && ts.isIdentifier(node.initializer)) {
      const from = node.initializer.text;
      for (const el of node.name.elements) {
        const key = el.propertyName ?? el.name;
        const name = ts.isIdentifier(key) || ts.isStringLiteral(key) ? key.text : null;
        if (name === null) continue;
        if (from === 'process' && processMembers.has(name)) prints.push(`${line(node)} process.${name}`);
        if (from === 'console') prints.push(`${line(node)} console.${name}`);
      }
    }
    // export const x: Step<P> = ...; const x = defineStep(...); const x = {...} satisfies Step<P>
    if (ts.isVariableDeclaration(node) && (isStepType(node.type) || isStepExpression(node.initializer))) definesStep = true;
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { file, imports, prints, definesStep };
}

/** `./x.js` -> `<dir>/x.ts` (or .tsx, or x/index.ts), as NodeNext resolution maps emitted names back to sources. */
export function resolveRelative(fromFile: string, spec: string): string {
  const base = resolve(dirname(fromFile), spec);
  const candidates = [base];
  const js = /\.(m|c)?js(x?)$/.exec(base);
  if (js) candidates.unshift(`${base.slice(0, -js[0].length)}.${js[1] ?? ''}ts${js[2] ?? ''}`);
  else candidates.push(`${base}.ts`, `${base}.tsx`, join(base, 'index.ts'));
  return candidates.find((c) => existsSync(c)) ?? candidates[0] ?? base;
}

/** `@scope/pkg/sub` -> `@scope/pkg`; `pkg/sub` -> `pkg`. */
export function packageName(spec: string): string {
  const parts = spec.split('/');
  return (spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]) ?? spec;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function findCycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)?.has(v)) cycles.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);
  return cycles.sort((a, b) => (a[0] ?? '').localeCompare(b[0] ?? ''));
}

/** Runs every rule over the `.ts` files under `root` (a src/ folder). Paths in the result are relative to it. */
export function checkTree(root: string): Violations {
  const rel = (file: string): string => relative(root, file).split(sep).join('/');
  const layerOf = (file: string): string => {
    const r = rel(file);
    return r.startsWith('..') ? '(outside src)' : r.includes('/') ? (r.split('/')[0] ?? '') : '(src root)';
  };
  const sources = sourceFiles(root).map(readSource);
  const byFile = new Map(sources.map((s) => [s.file, s]));
  const graph = new Map<string, Set<string>>();
  const v: Violations = { wrongDirection: [], cycles: [], foreignPackages: [], printsOutsideCli: [], stepImportsStep: [] };

  for (const s of sources) {
    const from = layerOf(s.file);
    const edges = new Set<string>();
    graph.set(rel(s.file), edges);
    for (const { spec } of s.imports) {
      if (spec.startsWith('.')) {
        const target = resolveRelative(s.file, spec);
        const to = layerOf(target);
        if (byFile.has(target)) edges.add(rel(target));
        if (to !== from && !(allowedImports[from] ?? []).includes(to)) v.wrongDirection.push(`${rel(s.file)} -> ${spec} (${to})`);
        const imported = byFile.get(target);
        if (from === 'steps' && to === 'steps' && s.definesStep && imported?.definesStep && imported.file !== s.file) {
          v.stepImportsStep.push(`${rel(s.file)} -> ${rel(target)}`);
        }
      } else if (!spec.startsWith('node:')) {
        const name = packageName(spec);
        if (packageOwners[name] !== from) v.foreignPackages.push(`${rel(s.file)} imports ${name}${packageOwners[name] ? ` (owned by ${packageOwners[name]})` : ' (no owner folder; a bare built-in needs node:)'}`);
      }
    }
    if (from !== printingLayer) v.printsOutsideCli.push(...s.prints.map((p) => `${rel(s.file)}:${p}`));
  }
  v.cycles = findCycles(graph);
  for (const key of ['wrongDirection', 'foreignPackages', 'printsOutsideCli', 'stepImportsStep'] as const) v[key] = [...new Set(v[key])].sort();
  return v;
}
