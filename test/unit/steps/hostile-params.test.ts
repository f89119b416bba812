/**
 * A corpus of hostile values for every string parameter of every step, found by walking each
 * step's TypeBox schema (the catalogue is the folder, so a new step is covered without a line
 * here). Each value is either refused before any connection (a ConfigError: exit 2, a short
 * message without control characters or the value's bulk) or accepted; an accepted value is
 * planned against a blank host and every command the engine would run is rendered to shell text
 * and evaluated by dash and bash: the words come back exactly as planned and a marker file proves
 * that no injected command ran on this machine. Shell script text never carries a parameter, and
 * a file never gets a line a value smuggled in.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ZanuriError } from '../../../src/core/errors.js';
import type { Action } from '../../../src/core/plan.js';
import { renderArgv } from '../../../src/core/quote.js';
import type { Cmd } from '../../../src/core/types.js';
import { handlerCmd, putCmd, serviceCmd } from '../../../src/engine/actions.js';
import { blankFacts } from '../../../src/engine/gather.js';
import { loadPlaybook } from '../../../src/profiles/playbook.js';
import { allSteps } from '../../../src/steps/index.js';
import { planStep, servedPorts } from '../../../src/steps/plan.js';
import type { AnyStep, PlanContext } from '../../../src/steps/types.js';
import { templates } from './facts-of.js';

const markers = mkdtempSync(join(tmpdir(), 'zanuri-pwned-'));
afterAll(() => rmSync(markers, { recursive: true, force: true }));
const touch = (name: string): string => `touch ${markers}/${name}`;

/** Every value carries ZNRPWN where it could smuggle a command or a line, so script text can be searched for it. */
export const hostileValues: readonly string[] = [
  `'; ${touch('quote')}; echo ZNRPWN '`,
  `" && ${touch('dquote')} && echo "ZNRPWN`,
  `$(${touch('subst')})ZNRPWN`,
  `\`${touch('backtick')}\`ZNRPWN`,
  `ZNRPWN;${touch('semicolon')}`,
  `ZNRPWN && ${touch('and')}`,
  `ZNRPWN|${touch('pipe')}`,
  `ZNRPWN\n${touch('newline')}`,
  `ZNRPWN\r\n${touch('crlf')}`,
  'ZNRPWN\0tail',
  'x'.repeat(100_000),
  `/${'a'.repeat(100_000)}`,
  `${'a'.repeat(50_000)}.example.com`,
  'dеploy', // Cyrillic е
  'ｄｅｐｌｏｙ', // fullwidth
  '／etc', // fullwidth solidus
  'ZNRPWN\u202etxt.exe', // right-to-left override
  'ZNRPWN\x1b]0;title\x07\x1b[2J', // terminal escape sequences
  '../../etc/passwd',
  '/srv/../etc',
  '/etc/../../root/.ssh',
  `-oProxyCommand=${touch('option')}`,
  '--help',
  '-rf',
  '',
  ' ',
  '{{#x}}{{/x}}ZNRPWN',
  '%n%s%x',
  '*',
];

/**
 * Fields written as free text on purpose (quoted where they land); any other field that takes shell
 * metacharacters fails this test, to be looked at. A whole-file field is the content of a file the
 * operator hands over (a Compose file): its lines are its own.
 */
const wholeFile = new Set(['compose.file', 'compose.file.<key>']);
const freeText = new Set(['baseline.banner', 'postgresql.settings.*', ...wholeFile]);

/** Parameters for steps whose required ones no shipped playbook gives; everything else comes from the playbooks. */
const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostileCorpusHostileCorpusHostileCorpus0 op@corpus';
const required: Record<string, Record<string, unknown>> = {
  'deploy-user': { authorizedKeys: [key] },
  certbot: { domain: 'example.com', email: 'ops@example.com' },
  keepalived: { virtualIp: '10.213.0.250', peers: ['10.213.0.12'], authPass: 'secret1' },
  'nvidia-container-toolkit': { repositoryKey: ['-----BEGIN PGP PUBLIC KEY BLOCK-----', 'mDMEaw43PhYJKwYBBAHaRw8BAQdAYOQVODk7LmtM0cFOe5bk1RZVFkw15VRwbgIq', '=QD/F', '-----END PGP PUBLIC KEY BLOCK-----'] },
  'redis-sentinel': { clusterSecret: ['a'.repeat(64)], primary: { host: '10.213.0.12', port: 6379 } },
};

type Path = readonly (string | number)[];
type Schema = Record<string, unknown>;

/** Every string-valued place in a schema: properties, list items (index 0), record values (*) and record keys (<key>). Enums are closed already. */
export function stringPaths(schema: Schema, at: Path = []): Path[] {
  if (Array.isArray(schema['anyOf'])) {
    const all = (schema['anyOf'] as Schema[]).flatMap((s) => stringPaths(s, at));
    return [...new Map(all.map((p) => [JSON.stringify(p), p])).values()];
  }
  if (schema['type'] === 'string') return schema['enum'] || schema['const'] !== undefined ? [] : [at];
  if (schema['type'] === 'array' && schema['items']) return stringPaths(schema['items'] as Schema, [...at, 0]);
  if (schema['type'] === 'object') {
    const out = Object.entries((schema['properties'] as Record<string, Schema> | undefined) ?? {}).flatMap(([k, s]) => stringPaths(s, [...at, k]));
    const records = [...Object.values((schema['patternProperties'] as Record<string, Schema> | undefined) ?? {}), ...(typeof schema['additionalProperties'] === 'object' ? [schema['additionalProperties'] as Schema] : [])];
    for (const s of records) out.push(...stringPaths(s, [...at, '*']), [...at, '<key>']);
    return out;
  }
  return [];
}

/** raw with the value at path: a list becomes [value], a record's first entry (or a new one) gets it. */
function withValue(raw: unknown, path: Path, value: string): unknown {
  if (!path.length) return value;
  const [head, ...rest] = path;
  const obj = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  if (head === 0) return [withValue(Array.isArray(raw) ? raw[0] : undefined, rest, value)];
  if (head === '<key>') return { ...obj, [value]: 'on' };
  if (head === '*') {
    const k = Object.keys(obj)[0] ?? 'application_name';
    return { ...obj, [k]: withValue(obj[k], rest, value) };
  }
  return { ...obj, [head as string]: withValue(obj[head as string], rest, value) };
}

const label = (step: string, path: Path): string => [step, ...path.map((p) => (p === 0 ? '[]' : String(p)))].join('.').replace('.[]', '[]');

/** Every command the engine would run for these actions, and the files it would write. */
function commandsOf(actions: readonly Action[]): { cmds: Cmd[]; files: Array<{ path: string; content: string }> } {
  const cmds: Cmd[] = [];
  const files: Array<{ path: string; content: string }> = [];
  for (const a of actions) {
    if ('notify' in a && a.notify) cmds.push(...a.notify.map(handlerCmd));
    switch (a.kind) {
      case 'run': cmds.push(a.cmd); break;
      case 'put':
        cmds.push(putCmd(a.path, a.content, a.mode, a.owner, a.group, a.validate, a.validateInPlace));
        files.push({ path: a.path, content: Buffer.isBuffer(a.content) ? a.content.toString('utf8') : typeof a.content === 'string' ? a.content : a.content.reveal() });
        break;
      case 'service': cmds.push(serviceCmd(a.unit, a.op)); break;
      case 'packages': cmds.push({ argv: ['apt-get', 'install', '--', ...a.install] }); break;
      case 'remove': case 'chmod': case 'directory': case 'link':
        cmds.push({ argv: ['stat', '--', a.path, ...(a.kind === 'link' && a.target ? [a.target] : [])] });
        break;
      default: break;
    }
  }
  return { cmds, files };
}

/** Evaluates rendered argv in a shell that only reads the words back (set --), returning them as it saw them. */
function wordsAsShellSees(shell: 'dash' | 'bash', lines: readonly string[]): string[][] {
  const script = lines.map((l) => `set -- ${l}\nprintf '%s\\036' "$@"; printf '\\035'`).join('\n');
  const file = join(markers, '..', `${markers.split('/').at(-1) ?? 'x'}.${shell}.sh`);
  writeFileSync(file, script);
  const out = execFileSync(shell, [file], { maxBuffer: 256 * 1024 * 1024 }).toString('utf8');
  rmSync(file);
  return out.split('\x1d').slice(0, -1).map((c) => c.split('\x1e').slice(0, -1));
}

const steps = await allSteps();
const base: Record<string, Record<string, unknown>> = {};
for (const file of readdirSync(new URL('../../../playbooks/', import.meta.url)).filter((f) => f.endsWith('.yaml'))) {
  for (const s of (await loadPlaybook(file.slice(0, -5))).steps) base[s.step] ??= s.params;
}
for (const [id, extra] of Object.entries(required)) base[id] = { ...base[id], ...extra };

interface Accepted { step: AnyStep; path: Path; value: string; params: unknown }

describe('hostile values for every string parameter of every step', () => {
  const accepted: Accepted[] = [];

  it('has valid base parameters for every step of the catalogue, so each is covered', () => {
    expect(steps.length).toBeGreaterThan(20);
    for (const step of steps) {
      expect(() => step.parseParams(base[step.id] ?? {}), `${step.id}: add its required parameters to "required" in this test`).not.toThrow();
    }
  });

  it('refuses each with a ConfigError (exit 2) and a short, printable message, or accepts it only in a free-text field', () => {
    let refused = 0;
    for (const step of steps) {
      const paths = stringPaths(step.params as Schema);
      for (const path of paths) {
        for (const value of hostileValues) {
          const raw = withValue(base[step.id] ?? {}, path, value);
          let params: unknown;
          try {
            params = step.parseParams(raw);
          } catch (error) {
            const where = `${label(step.id, path)}=${JSON.stringify(value).slice(0, 60)}`;
            expect(error, where).toBeInstanceOf(ZanuriError);
            expect((error as ZanuriError).exitCode, where).toBe(2);
            const message = (error as ZanuriError).message;
            expect(message.length, where).toBeLessThan(1000);
            expect(message, where).not.toMatch(/[\0\x07\x1b\r\u202e]/);
            expect(message.startsWith(`${step.id}`), `${where}: the message names the step: ${message}`).toBe(true);
            refused += 1;
            continue;
          }
          accepted.push({ step, path, value, params });
        }
      }
    }
    expect(refused).toBeGreaterThan(1000);
    const dangerous = accepted.filter((a) => /[;&|`$\n\r\0\x1b'"]/.test(a.value) || a.value.length > 4096);
    const outside = [...new Set(dangerous.map((a) => label(a.step.id, a.path)).filter((l) => !freeText.has(l)))];
    expect(outside, 'fields that take shell metacharacters, control characters or 100 kB but are not known free text').toEqual([]);
    for (const a of accepted) if (!wholeFile.has(label(a.step.id, a.path))) expect(a.value, label(a.step.id, a.path)).not.toMatch(/[\0\n\r\x1b\u202e]/);
  });

  it('plans an accepted value into commands a shell reads back word for word, never into script text, and runs nothing injected', () => {
    expect(accepted.length, 'free-text fields accept quotes and shell syntax').toBeGreaterThan(0);
    const rendered: Array<{ where: string; argv: readonly string[]; line: string }> = [];
    for (const a of accepted) {
      const where = `${label(a.step.id, a.path)}=${JSON.stringify(a.value).slice(0, 60)}`;
      const selected = [{ step: a.step, params: a.params }];
      const ctx: PlanContext = { loginUser: 'root', sshPort: 22, local: false, templates, served: servedPorts(selected), selected: [a.step.id] };
      let actions: readonly Action[];
      try {
        actions = planStep(a.step, blankFacts, a.params, ctx).actions;
      } catch (error) {
        // Refused while planning (still before any connection): as good as refused by the schema.
        expect(error, where).toBeInstanceOf(ZanuriError);
        expect((error as ZanuriError).exitCode, where).toBe(2);
        continue;
      }
      const { cmds, files } = commandsOf(actions);
      for (const cmd of cmds) {
        // sh -c SCRIPT NAME ARGS...: the script is ours, ARGS are its positional parameters (data, never options).
        const script = cmd.argv.findIndex((w, i) => w === '-c' && /^(?:sh|bash|dash)$/.test(cmd.argv[i - 1] ?? ''));
        for (const [i, word] of cmd.argv.entries()) {
          if (script >= 0 && i > script + 2) continue;
          const previous = cmd.argv[i - 1];
          if (previous === '-c' && /^(?:sh|bash|dash)$/.test(cmd.argv[i - 2] ?? '')) expect(word.includes('ZNRPWN'), `${where}: a parameter inside shell script text: ${word.slice(0, 200)}`).toBe(false);
          // An option-like value is an option to the command unless it follows "--" or is glued to its option.
          if (word === a.value && word.startsWith('-')) expect(cmd.argv.slice(0, i).includes('--'), `${where}: ${renderArgv(cmd.argv).slice(0, 200)}`).toBe(true);
        }
        rendered.push({ where, argv: cmd.argv, line: renderArgv(cmd.argv) });
      }
      // A config file never gets a line the value brought in.
      if (!wholeFile.has(label(a.step.id, a.path))) for (const file of files) expect(file.content.split(/\r?\n/).some((l) => l.trimStart().startsWith(touch(''))), `${where}: ${file.path}`).toBe(false);
    }
    expect(rendered.length).toBeGreaterThan(0);
    for (const shell of ['dash', 'bash'] as const) {
      const seen = wordsAsShellSees(shell, rendered.map((r) => r.line));
      expect(seen.length).toBe(rendered.length);
      rendered.forEach((r, i) => expect(seen[i], `${shell}: ${r.where}`).toEqual([...r.argv]));
    }
    expect(readdirSync(markers), 'a marker file: an injected command ran on this machine').toEqual([]);
  });
});
