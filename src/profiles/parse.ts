/**
 * Reading one profile file: YAML with positions, validation against profiles/schema.json, errors as
 * file:line:col. Loaded only when a profile file must really be parsed (see bundle.ts).
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { LineCounter, parseDocument, isMap, isScalar, type Document, type Node } from 'yaml';
import { ConfigError } from '../core/errors.js';
import { plainData } from './yaml.js';
import type { Profile } from './types.js';

import { builtinProfilesDir, shownKey, shownName } from './location.js';

// One compile per process, shared by files loaded in parallel: compiling is most of the cost.
let validator: Promise<ValidateFunction> | null = null;

function schemaValidator(): Promise<ValidateFunction> {
  validator ??= readFile(join(builtinProfilesDir, 'schema.json'), 'utf8').then((text) =>
    new Ajv2020({ allErrors: true, strict: false }).compile(JSON.parse(text) as object));
  return validator;
}

function position(file: string, lines: LineCounter, offset: number): string {
  const { line, col } = lines.linePos(offset);
  return `${file}:${line}:${col}`;
}

/** The YAML node an ajv error is about: for an unknown key, the key itself. */
function nodeFor(doc: Document, error: ErrorObject): Node | null {
  const path = error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  const node = (path.length ? doc.getIn(path, true) : doc.contents) as Node | null;
  const extra = (error.params as { additionalProperty?: string }).additionalProperty;
  if (extra && isMap(node)) {
    const pair = node.items.find((item) => isScalar(item.key) && item.key.value === extra);
    if (pair && isScalar(pair.key)) return pair.key;
  }
  return node ?? null;
}

function describeError(error: ErrorObject): string {
  const where = error.instancePath ? error.instancePath.slice(1).replaceAll('/', '.') : 'the profile';
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': return `unknown key ${shownKey(String(params['additionalProperty']))} in ${where}`;
    case 'required': return `${where} is missing "${String(params['missingProperty'])}"`;
    case 'enum': return `${where} must be one of: ${(params['allowedValues'] as unknown[]).join(', ')}`;
    case 'const': return `${where} must be ${JSON.stringify(params['allowedValue'])}`;
    default: return `${where} ${error.message ?? 'is invalid'}`;
  }
}

/** The most useful error: unknown keys and wrong types first, deepest path first; if/then noise last. */
function bestError(errors: readonly ErrorObject[]): ErrorObject | undefined {
  const useful = errors.filter((e) => !['if', 'oneOf', 'anyOf', 'allOf', 'not'].includes(e.keyword));
  const rank = (e: ErrorObject): number => (e.keyword === 'additionalProperties' ? 0 : e.keyword === 'type' ? 1 : e.keyword === 'required' ? 3 : 2);
  return [...(useful.length ? useful : errors)].sort((a, b) =>
    rank(a) - rank(b) || b.instancePath.split('/').length - a.instancePath.split('/').length)[0];
}

/** Reads and validates one profile file; errors name file:line:col and a hint. `extends` is not resolved here. */
export async function loadProfileFile(file: string): Promise<Profile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read profile (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`, { location: shownName(file), cause: error });
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    throw new ConfigError(`malformed YAML: ${syntax.message.split('\n')[0]}`, {
      location: position(file, lines, syntax.pos[0]),
      hint: 'check indentation and quoting around this position',
    });
  }
  const data = plainData(doc, lines, file);
  const validate = await schemaValidator();
  if (!validate(data)) {
    const error = bestError(validate.errors ?? []);
    const node = error ? nodeFor(doc, error) : null;
    throw new ConfigError(error ? describeError(error) : 'invalid profile', {
      location: node?.range ? position(file, lines, node.range[0]) : file,
      hint: 'profiles/schema.json describes every key; profiles/README.md lists the checks',
    });
  }
  const profile = { ...(data as Omit<Profile, 'file'>), file };
  const expectedId = basename(file).replace(/\.ya?ml$/, '');
  if (profile.id !== expectedId) {
    const node = doc.get('id', true) as Node | undefined;
    throw new ConfigError(`profile id "${profile.id}" does not match its file name "${expectedId}"`, {
      location: node?.range ? position(file, lines, node.range[0]) : file,
    });
  }
  const seen = new Set<string>();
  profile.requirements.forEach((requirement, index) => {
    if (seen.has(requirement.id)) {
      const node = doc.getIn(['requirements', index, 'id'], true) as Node | undefined;
      throw new ConfigError(`requirement id "${requirement.id}" appears twice`, {
        location: node?.range ? position(file, lines, node.range[0]) : file,
      });
    }
    seen.add(requirement.id);
  });
  return profile;
}
