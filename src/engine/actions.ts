import { createHash } from 'node:crypto';
import { createTwoFilesPatch } from 'diff';
import { CommandError } from '../core/errors.js';
import { octal, type Action, type FileSnapshot, type Handler, type ServiceOp } from '../core/plan.js';
import { renderArgv } from '../core/quote.js';
import { Secret } from '../core/secret.js';
import type { Cmd } from '../core/types.js';
import { aptInstallCmd, aptUpdateCmd } from '../resources/apt.js';
import type { RootRunner } from './host.js';

/** Where replaced and removed files are kept: never beside them, where an include glob could pick them up. */
export const backupRoot = '/var/lib/zanuri/backup';

/** An action as the dry run and the report show it: one line, plus a unified diff for files. */
export interface ActionView {
  kind: Action['kind'];
  summary: string;
  why: string;
  diff?: string;
}

/**
 * What the engine does with each kind of action, in one place: apply it, undo it (rollback), and
 * show it (dry run, report). apply and undo return the handlers the change calls for.
 */
interface ActionKind<A extends Action> {
  apply(root: RootRunner, action: A): Promise<Handler[]>;
  undo(root: RootRunner, action: A): Promise<Handler[]>;
  view(action: A): Omit<ActionView, 'kind' | 'why'>;
}

/**
 * Replaces a file atomically. The content arrives base64-encoded on stdin (exact bytes over any
 * transport) and is checked against its size and sha256 before anything else: a dropped connection
 * can never rename a truncated file into place. Then owner and mode, optional validation of the
 * staged copy ('{}' in its argv is the temp path), a copy of the old file in the backup tree,
 * fsync, rename. Arguments: dest mode owner group size sha256 [validate argv...].
 */
const putScript = `set -eu
dest=$1 mode=$2 owner=$3 group=$4 size=$5 sum=$6; shift 6
mkdir -p -- "$(dirname -- "$dest")"
tmp=$(mktemp -- "$dest.zanuri-XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
base64 -d > "$tmp"
if [ "$(wc -c < "$tmp")" -ne "$size" ] || [ "$(sha256sum < "$tmp" | cut -d' ' -f1)" != "$sum" ]; then
  echo "zanuri: the new $dest arrived incomplete or changed; the old file is untouched" >&2; exit 4
fi
chown "$owner:$group" "$tmp"
chmod "$mode" "$tmp"
if [ $# -gt 0 ]; then
  for a do shift; if [ "$a" = '{}' ]; then set -- "$@" "$tmp"; else set -- "$@" "$a"; fi; done
  "$@" >&2 || { echo "zanuri: validation refused the new $dest; the old file is untouched" >&2; exit 3; }
fi
if [ -e "$dest" ]; then mkdir -p -- "${backupRoot}$(dirname -- "$dest")"; cp -p -- "$dest" "${backupRoot}$dest"; fi
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$dest"
trap - EXIT`;

const removeScript = `set -eu
mkdir -p -- "${backupRoot}$(dirname -- "$1")"
mv -f -- "$1" "${backupRoot}$1"`;

/** Points a symbolic link at its target, replacing whatever link was there. Arguments: target path. */
const linkScript = `set -eu
mkdir -p -- "$(dirname -- "$2")"
ln -sfn -- "$1" "$2"`;

const bytesOf = (content: string | Buffer | Secret): Buffer =>
  Buffer.isBuffer(content) ? content : Buffer.from(content instanceof Secret ? content.reveal() : content, 'utf8');

export function putCmd(path: string, content: string | Buffer | Secret, mode: number, owner: string, group: string, validate?: Cmd): Cmd {
  const bytes = bytesOf(content);
  const encoded = bytes.toString('base64');
  return {
    argv: ['sh', '-c', putScript, 'zanuri-put', path, mode.toString(8), owner, group, String(bytes.length), createHash('sha256').update(bytes).digest('hex'), ...(validate?.argv ?? [])],
    stdin: content instanceof Secret ? new Secret(encoded) : encoded,
  };
}

export function serviceCmd(unit: string, op: ServiceOp): Cmd {
  return op === 'enable-now' ? { argv: ['systemctl', 'enable', '--now', '--', unit] } : { argv: ['systemctl', op, '--', unit] };
}

/** A reload handler starts a unit that is not running (systemctl reload would fail on it). */
export function handlerCmd(handler: Handler): Cmd {
  return { argv: ['systemctl', handler.op === 'reload' ? 'reload-or-restart' : 'restart', '--', handler.unit] };
}

const attributesCmd = (path: string, mode: number, owner: string, group: string): Cmd =>
  ({ argv: ['sh', '-c', 'chown -h -- "$2" "$1" && chmod -- "$3" "$1"', 'zanuri-chmod', path, `${owner}:${group}`, mode.toString(8)] });

/** Puts a file back exactly as it was: bytes, mode, owner and group; or no file when there was none. */
export async function restoreFile(root: RootRunner, path: string, before: FileSnapshot | null): Promise<void> {
  if (before === null) {
    await root.must({ argv: ['rm', '-f', '--', path] }, `removing ${path}`);
    return;
  }
  await root.must(putCmd(path, before.content, before.mode, before.owner, before.group), `restoring ${path}`);
}

async function setLink(root: RootRunner, path: string, target: string | null): Promise<void> {
  await root.must(target === null ? { argv: ['rm', '-f', '--', path] } : { argv: ['sh', '-c', linkScript, 'zanuri-link', target, path] },
    target === null ? `removing the link ${path}` : `linking ${path} to ${target}`);
}

/** Runs `check` after a change is in place; on failure puts the old state back and throws. */
async function validatedInPlace(root: RootRunner, check: Cmd | undefined, what: string, undo: () => Promise<void>): Promise<void> {
  if (!check) return;
  const result = await root.run(check);
  if (result.ok) return;
  await undo();
  throw new CommandError(result, `validating ${what} in place (the previous version was put back)`);
}

function unifiedDiff(path: string, before: Buffer | null, after: string | Buffer | Secret): string {
  if (after instanceof Secret) return `--- ${path}\n+++ ${path}\n(secret content: not shown)\n`;
  const text = (b: Buffer | string): string => (typeof b === 'string' ? b : b.toString('utf8'));
  return createTwoFilesPatch(before === null ? '/dev/null' : path, path, before === null ? '' : text(before), text(after), undefined, undefined, { context: 3 })
    .split('\n').slice(1).join('\n');
}

const none = async (): Promise<Handler[]> => [];

async function retry<T>(attempts: number, work: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i += 1) {
    try {
      return await work();
    } catch (error) {
      if (i >= attempts) throw error;
      await new Promise((r) => setTimeout(r, 2000 * i));
    }
  }
}

const kinds: { [K in Action['kind']]: ActionKind<Extract<Action, { kind: K }>> } = {
  packages: {
    async apply(root, a) {
      await retry(3, () => root.must(aptUpdateCmd, 'apt-get update', { timeoutMs: 600_000 }));
      await root.must(aptInstallCmd(a.install), `installing ${a.install.join(' ')}`, { timeoutMs: 1_800_000 });
      return [];
    },
    undo: none,
    view: (a) => ({ summary: `apt-get install ${a.install.join(' ')}` }),
  },
  run: {
    async apply(root, a) {
      await root.must(a.cmd, a.display ?? a.why, { timeoutMs: 600_000 });
      return a.notify ?? [];
    },
    async undo(root, a) {
      if (!a.undo) return [];
      await root.must(a.undo, `undoing: ${a.display ?? renderArgv(a.cmd.argv)}`, { timeoutMs: 600_000 });
      return a.notify ?? [];
    },
    view: (a) => ({ summary: a.display ?? renderArgv(a.cmd.argv) }),
  },
  put: {
    async apply(root, a) {
      await root.must(putCmd(a.path, a.content, a.mode, a.owner, a.group, a.validate), `writing ${a.path}`);
      await validatedInPlace(root, a.validateInPlace, a.path, () => restoreFile(root, a.path, a.before));
      return a.notify ?? [];
    },
    async undo(root, a) {
      await restoreFile(root, a.path, a.before);
      return a.notify ?? [];
    },
    view: (a) => ({
      summary: `${a.before === null ? 'create' : 'update'} ${a.path} (${a.owner}:${a.group} ${octal(a.mode)})${a.source?.includes('overrides') ? ` from ${a.source}` : ''}`,
      diff: unifiedDiff(a.path, a.before?.content ?? null, a.content),
    }),
  },
  remove: {
    async apply(root, a) {
      await root.must({ argv: ['sh', '-c', removeScript, 'zanuri-remove', a.path] }, `removing ${a.path}`);
      await validatedInPlace(root, a.validateInPlace, `the removal of ${a.path}`, () => restoreFile(root, a.path, a.before));
      return a.notify ?? [];
    },
    async undo(root, a) {
      await restoreFile(root, a.path, a.before);
      return a.notify ?? [];
    },
    view: (a) => ({ summary: `remove ${a.path}`, diff: unifiedDiff(a.path, a.before.content, '') }),
  },
  chmod: {
    async apply(root, a) {
      await root.must(attributesCmd(a.path, a.mode, a.owner, a.group), `setting ${a.path} to ${octal(a.mode)} ${a.owner}:${a.group}`);
      return a.notify ?? [];
    },
    async undo(root, a) {
      await root.must(attributesCmd(a.path, a.before.mode, a.before.owner, a.before.group), `restoring ${a.path}'s owner and mode`);
      return a.notify ?? [];
    },
    view: (a) => ({ summary: `chown ${a.owner}:${a.group} and chmod ${octal(a.mode)} ${a.path} (was ${a.before.owner}:${a.before.group} ${octal(a.before.mode)})` }),
  },
  directory: {
    async apply(root, a) {
      await root.must({ argv: ['install', '-d', '-m', a.mode.toString(8), '-o', a.owner, '-g', a.group, '--', a.path] }, `creating ${a.path}/`);
      return [];
    },
    async undo(root, a) {
      if (a.before) await root.must(attributesCmd(a.path, a.before.mode, a.before.owner, a.before.group), `restoring ${a.path}/'s owner and mode`);
      else await root.must({ argv: ['rmdir', '--ignore-fail-on-non-empty', '--', a.path] }, `removing ${a.path}/`);
      return [];
    },
    view: (a) => ({ summary: `${a.before ? 'chown/chmod' : 'create'} ${a.path}/ (${a.owner}:${a.group} ${octal(a.mode)})` }),
  },
  link: {
    async apply(root, a) {
      await setLink(root, a.path, a.target);
      await validatedInPlace(root, a.validateInPlace, `the link ${a.path}`, () => setLink(root, a.path, a.before));
      return a.notify ?? [];
    },
    async undo(root, a) {
      await setLink(root, a.path, a.before);
      return a.notify ?? [];
    },
    view: (a) => ({ summary: `${a.target === null ? `remove the link ${a.path}` : `link ${a.path} -> ${a.target}`}${a.before === null ? '' : ` (was -> ${a.before})`}` }),
  },
  service: {
    async apply(root, a) {
      await root.must(serviceCmd(a.unit, a.op), `systemctl ${a.op} ${a.unit}`, { timeoutMs: 300_000 });
      return [];
    },
    undo: none,
    view: (a) => ({ summary: `systemctl ${a.op === 'enable-now' ? 'enable --now' : a.op} ${a.unit}` }),
  },
  reboot: {
    async apply(root) {
      await root.reboot();
      return [];
    },
    undo: none,
    view: () => ({ summary: 'reboot, wait for SSH, read the facts again' }),
  },
};

function kindOf<A extends Action>(action: A): ActionKind<A> {
  return kinds[action.kind] as unknown as ActionKind<A>;
}

/** Applies one action; returns the handlers it triggers. Failures throw CommandError with the whole result. */
export const applyAction = (root: RootRunner, action: Action): Promise<Handler[]> => kindOf(action).apply(root, action);

/** Undoes one applied action as far as its kind can be undone; returns the handlers to run once afterwards. */
export const undoAction = (root: RootRunner, action: Action): Promise<Handler[]> => kindOf(action).undo(root, action);

export const viewAction = (action: Action): ActionView => ({ kind: action.kind, why: action.why, ...kindOf(action).view(action) });

/** Each distinct handler once, restarts winning over reloads of the same unit. */
export function dedupeHandlers(handlers: readonly Handler[]): Handler[] {
  const byUnit = new Map<string, Handler>();
  for (const h of handlers) {
    const seen = byUnit.get(h.unit);
    if (!seen || (seen.op === 'reload' && h.op === 'restart')) byUnit.set(h.unit, h);
  }
  return [...byUnit.values()];
}
