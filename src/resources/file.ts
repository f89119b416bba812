import type { Content } from '../core/content.js';
import { octal, type Action, type FileSnapshot, type Handler } from '../core/plan.js';
import { Secret } from '../core/secret.js';
import type { Cmd } from '../core/types.js';
import { fileFact, type FactRequest, type FileState } from '../facts/state.js';
import type { Resource } from './types.js';

export interface FileOptions {
  mode?: number;
  owner?: string;
  /** Defaults to the owner's name. */
  group?: string;
  /** Run on the staged copy; '{}' in argv stands for its path. */
  validate?: Cmd;
  /** Run once the file is in place; on failure the old file (bytes, mode, owner) is put back. */
  validateInPlace?: Cmd;
  notify?: Handler[];
  /** Reasons in the step's words: when the file is missing, and when its content differs. */
  whyMissing?: string;
  whyDiffers?: string;
  /** Read the file through this fact instead of fileFact(path), for paths only the host can work out. */
  state?: FactRequest<FileState>;
}

const bytesOf = (text: string | Buffer | Secret): Buffer =>
  Buffer.isBuffer(text) ? text : Buffer.from(text instanceof Secret ? text.reveal() : text, 'utf8');

export function snapshotOf(state: FileState): FileSnapshot | null {
  if (!state.exists || state.bytes === null || state.mode === null || state.owner === null || state.group === null) return null;
  return { content: state.bytes, mode: state.mode, owner: state.owner, group: state.group };
}

const attributes = (mode: number | null, owner: string | null, group: string | null): string => `${octal(mode ?? 0)} ${owner}:${group}`;

/** A regular file with exactly this content, mode, owner and group. */
export function file(path: string, content: Content | string, options: FileOptions = {}): Resource {
  const { text, source } = typeof content === 'string' ? { text: content, source: undefined } : content;
  const mode = options.mode ?? 0o644;
  const owner = options.owner ?? 'root';
  const group = options.group ?? owner;
  const state = options.state ?? fileFact(path);
  return {
    id: `file:${path}`,
    describe: `${path} is as declared (${attributes(mode, owner, group)})`,
    facts: () => [state],
    plan(facts) {
      const current = facts.get(state);
      const wanted = bytesOf(text);
      const sameContent = current.bytes !== null && current.bytes.equals(wanted);
      const sameAttributes = current.mode === mode && current.owner === owner && current.group === group;
      if (current.exists && sameContent && sameAttributes) return [];
      const before = snapshotOf(current);
      if (before && sameContent) {
        return [{
          kind: 'chmod', path, mode, owner, group, before: { mode: before.mode, owner: before.owner, group: before.group },
          why: `${path} is ${attributes(before.mode, before.owner, before.group)}, not ${attributes(mode, owner, group)}`,
        }];
      }
      const why = !before ? options.whyMissing ?? `${path} does not exist` : options.whyDiffers ?? `${path} differs from the declared content`;
      const action: Action = {
        kind: 'put', path, content: text, mode, owner, group, before, why,
        ...(options.validate ? { validate: options.validate } : {}),
        ...(options.validateInPlace ? { validateInPlace: options.validateInPlace } : {}),
        ...(options.notify ? { notify: options.notify } : {}),
        ...(source ? { source } : {}),
      };
      return [action];
    },
  };
}

/** No file at `path` (moved to the backup tree, so rollback can put it back). */
export function absent(path: string, options: { why?: string; notify?: Handler[]; validateInPlace?: Cmd } = {}): Resource {
  const state = fileFact(path);
  return {
    id: `file:${path}`,
    describe: `${path} is absent`,
    facts: () => [state],
    plan(facts) {
      const before = snapshotOf(facts.get(state));
      if (!before) return [];
      return [{
        kind: 'remove', path, before, why: options.why ?? `${path} exists`,
        ...(options.notify ? { notify: options.notify } : {}),
        ...(options.validateInPlace ? { validateInPlace: options.validateInPlace } : {}),
      }];
    },
  };
}
