import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mustache from 'mustache';
import type { Content, TemplateValue, Templates } from '../core/content.js';
import { ConfigError } from '../core/errors.js';
import { Secret } from '../core/secret.js';

/**
 * Every file zanuri writes is a template in templates/, rendered by Mustache: logic-less (no
 * expressions, no helpers, no partials here), so a template says what the file holds and the step
 * decides everything else. Values are never HTML-escaped (these are config files); steps validate
 * every value against a strict pattern before it gets here.
 *
 * An operator overrides a template by putting a file with the same relative name in an override
 * directory (`--templates DIR`); an override of a name that does not exist is refused (a typo
 * would otherwise be silently ignored). Both are parsed at load, and a render that names a
 * variable the step does not give fails with the template's file:line.
 */
export const builtinTemplatesDir = fileURLToPath(new URL('../../templates/', import.meta.url));

type Token = [string, string, number, number, Token[]?, number?];

interface Loaded {
  name: string;
  file: string;
  text: string;
  tokens: Token[];
  /** Set when this is an operator's override of the built-in template. */
  override: boolean;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : Promise.resolve(e.isFile() ? [join(dir, e.name)] : []))));
  return nested.flat();
}

function lineOf(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

async function loadOne(name: string, file: string, override: boolean): Promise<Loaded> {
  const text = await readFile(file, 'utf8');
  let tokens: Token[];
  try {
    tokens = Mustache.parse(text) as unknown as Token[];
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const at = /at (\d+)/.exec(message);
    throw new ConfigError(`template ${name}: ${message.split('\n')[0]}`, { location: `${file}:${at ? lineOf(text, Number(at[1])) : 1}:1` });
  }
  for (const token of walk(tokens)) {
    if (token[0] === '>' || token[0] === '=') {
      throw new ConfigError(`template ${name}: partials and delimiter changes are not allowed (templates stay logic-less)`, { location: `${file}:${lineOf(text, token[2])}:1` });
    }
  }
  return { name, file, text, tokens, override };
}

function* walk(tokens: readonly Token[]): Generator<Token> {
  for (const token of tokens) {
    yield token;
    if (token[4]) yield* walk(token[4]);
  }
}

const isSecret = (value: unknown): value is Secret => value instanceof Secret;

/** Replaces Secrets by their text for rendering; reports whether there was one. */
function reveal(value: TemplateValue, found: { secret: boolean }): unknown {
  if (isSecret(value)) {
    found.secret = true;
    return value.reveal();
  }
  if (Array.isArray(value)) return value.map((v: TemplateValue) => reveal(v, found));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v as TemplateValue, found)]));
  return value;
}

/** Every variable and section name must be given: in the view, or in the item of an enclosing section. */
function checkNames(template: Loaded, tokens: readonly Token[], scopes: ReadonlyArray<Record<string, unknown>>): void {
  for (const token of tokens) {
    const [kind, name] = token;
    if (!['name', '&', '#', '^'].includes(kind) || name === '.') continue;
    const head = name.split('.')[0] ?? name;
    const scope = scopes.find((s) => Object.prototype.hasOwnProperty.call(s, head));
    if (!scope) {
      throw new ConfigError(`template ${template.name}: unknown variable "${name}"`, {
        location: `${template.file}:${lineOf(template.text, token[2])}:1`,
        hint: `the step gives: ${[...new Set(scopes.flatMap((s) => Object.keys(s)))].sort().join(', ') || 'no variables'}`,
      });
    }
    if (kind === '^' && token[4]) checkNames(template, token[4], scopes);
    if (kind === '#' && token[4]) {
      const value = scope[head];
      const items = Array.isArray(value) ? value : value ? [value] : [];
      // Check the body against each item it is rendered with; a body that is not rendered has no item to check against.
      for (const item of items) {
        const own = item !== null && typeof item === 'object' && !Array.isArray(item) ? [item as Record<string, unknown>] : [];
        checkNames(template, token[4], [...own, ...scopes]);
      }
    }
  }
}

class TemplateSet implements Templates {
  constructor(private readonly templates: ReadonlyMap<string, Loaded>, private readonly overrideDir: string | null) {}

  render(name: string, vars: Readonly<Record<string, TemplateValue>>): Content {
    const template = this.templates.get(name);
    if (!template) throw new Error(`bug: no template named ${name} in templates/`);
    const found = { secret: false };
    const view = reveal(vars as TemplateValue, found) as Record<string, unknown>;
    checkNames(template, template.tokens, [view]);
    const text = Mustache.render(template.text, view, {}, { escape: (value: unknown) => String(value) });
    const source = template.override ? `${template.file} (overrides template ${name})` : `template ${name}`;
    return { text: found.secret ? new Secret(text) : text, source };
  }

  /** Names of the templates an operator has overridden. */
  get overridden(): string[] {
    return [...this.templates.values()].filter((t) => t.override).map((t) => t.name);
  }

  get overrideDirectory(): string | null {
    return this.overrideDir;
  }
}

export type { TemplateSet };

/** Loads and parses every built-in template and the operator's overrides, failing with file:line on a bad one. */
export async function loadTemplates(options: { builtinDir?: string; overrideDir?: string | null } = {}): Promise<TemplateSet> {
  const builtinDir = options.builtinDir ?? builtinTemplatesDir;
  const templates = new Map<string, Loaded>();
  for (const file of await listFiles(builtinDir)) {
    const name = relative(builtinDir, file);
    templates.set(name, await loadOne(name, file, false));
  }
  const overrideDir = options.overrideDir ? resolve(options.overrideDir) : null;
  if (overrideDir) {
    const info = await stat(overrideDir).catch(() => null);
    if (!info?.isDirectory()) throw new ConfigError(`template override directory ${overrideDir} does not exist`);
    for (const file of await listFiles(overrideDir)) {
      const name = relative(overrideDir, file);
      if (!templates.has(name)) {
        throw new ConfigError(`${file} overrides no template: there is no template named ${name}`, { hint: `templates: ${[...templates.keys()].sort().join(', ')}` });
      }
      templates.set(name, await loadOne(name, file, true));
    }
  }
  return new TemplateSet(templates, overrideDir);
}
