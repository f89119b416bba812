import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { LineCounter, isMap, isScalar, parseDocument } from 'yaml';
import { plainData } from './yaml.js';
import { shownKey, shownName } from './location.js';
import { ConfigError } from '../core/errors.js';
import type { Profile } from './types.js';

/** An ordered list of steps with their parameters, as written in playbooks/<id>.yaml. */
export interface Playbook {
  id: string;
  title: string;
  steps: Array<{ step: string; params: Record<string, unknown> }>;
  file: string;
  /** file:line:col of a value inside the parameters of the step at `index`, when the playbook writes it. */
  locate(index: number, path: readonly (string | number)[]): string | undefined;
}

export const builtinPlaybooksDir = fileURLToPath(new URL('../../playbooks/', import.meta.url));

const isPath = (name: string): boolean => name.includes('/') || /\.ya?ml$/.test(name);

/** Loads a playbook by id (shipped) or path, with file:line:col for anything malformed. */
export async function loadPlaybook(name: string): Promise<Playbook> {
  const file = isPath(name) ? name : `${builtinPlaybooksDir}${name}.yaml`;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new ConfigError(isPath(name) ? `cannot read playbook ${shownName(file)}` : `unknown playbook "${shownName(name)}"`, { hint: 'shipped playbooks are in playbooks/' });
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const at = (offset: number | undefined): string => {
    const pos = lines.linePos(offset ?? 0);
    return `${file}:${pos.line}:${pos.col}`;
  };
  if (doc.errors[0]) throw new ConfigError(`malformed YAML: ${doc.errors[0].message.split('\n')[0]}`, { location: at(doc.errors[0].pos[0]) });
  const data = plainData(doc, lines, file) as { id?: unknown; title?: unknown; steps?: unknown };
  const fail = (path: (string | number)[], message: string): never => {
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    throw new ConfigError(message, { location: at(node?.range?.[0]) });
  };
  /** An unknown key is reported where the key itself is written, not its value. */
  const failKey = (parent: (string | number)[], key: string, message: string): never => {
    const map = (parent.length ? doc.getIn(parent, true) : doc.contents) as unknown;
    const pair = isMap(map) ? map.items.find((item) => isScalar(item.key) && item.key.value === key) : undefined;
    const keyNode = pair && isScalar(pair.key) ? pair.key : undefined;
    throw new ConfigError(message, { location: at(keyNode?.range?.[0]) });
  };
  if (typeof data !== 'object' || data === null) fail([], 'a playbook is a mapping with id, title and steps');
  for (const key of Object.keys(data)) if (!['id', 'title', 'steps'].includes(key)) failKey([], key, `unknown key ${shownKey(key)} in the playbook`);
  if (typeof data.id !== 'string') fail(['id'], 'the playbook needs an id');
  if (!Array.isArray(data.steps) || !data.steps.length) fail(['steps'], 'the playbook needs a list of steps');
  const steps = (data.steps as unknown[]).map((entry, i) => {
    if (typeof entry !== 'object' || entry === null) return fail(['steps', i], 'each step is a mapping: { step: ID, params: {...} }');
    const { step, params, ...rest } = entry as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra) failKey(['steps', i], extra, `unknown key ${shownKey(extra)} in a playbook step`);
    if (typeof step !== 'string') fail(['steps', i], 'each step needs "step: ID"');
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) fail(['steps', i, 'params'], 'params must be a mapping');
    return { step: step as string, params: (params ?? {}) as Record<string, unknown> };
  });
  const locate = (index: number, path: readonly (string | number)[]): string | undefined => {
    for (let depth = path.length; depth > 0; depth -= 1) {
      const node = doc.getIn(['steps', index, 'params', ...path.slice(0, depth)], true) as { range?: [number, number, number] } | undefined;
      if (node?.range) return at(node.range[0]);
    }
    return undefined;
  };
  return { id: data.id as string, title: typeof data.title === 'string' ? data.title : (data.id as string), steps, file, locate };
}

/** Parameters a profile's numbers give its playbook's steps: ports for the firewall, PostgreSQL settings. */
export function profileParams(profile: Profile): Record<string, Record<string, unknown>> {
  const params: Record<string, Record<string, unknown>> = {};
  if (profile.ports?.length) {
    params['ufw'] = {
      allow: profile.ports.filter((p) => p.access === 'public').map((p) => ({ port: p.port, protocol: p.protocol })),
      internal: profile.ports.filter((p) => p.access === 'internal').map((p) => ({ port: p.port, protocol: p.protocol })),
      // SSH is the firewall's own business (adminFrom); other admin ports open from adminFrom only.
      admin: profile.ports.filter((p) => p.access === 'admin' && !(p.port === 22 && p.protocol === 'tcp')).map((p) => ({ port: p.port, protocol: p.protocol })),
    };
  }
  if (profile.postgresql) params['postgresql'] = { settings: profile.postgresql.settings };
  return params;
}
