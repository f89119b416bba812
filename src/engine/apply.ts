import { CommandError } from '../core/errors.js';
import type { Action, Handler, ServiceOp } from '../core/plan.js';
import { Secret } from '../core/secret.js';
import type { Cmd } from '../core/types.js';
import type { RootRunner } from './host.js';

/** Where replaced and removed files are kept: never beside them, where an include glob could pick them up. */
export const backupRoot = '/var/lib/zanuri/backup';

/**
 * Replaces a file atomically: content from stdin to a temp file beside the target, owner and mode
 * set, optional validation of the temp file ('{}' in its argv is the temp path), the old file copied
 * to the backup tree, then rename. Arguments: dest mode owner group [validate argv...].
 */
const putScript = `set -eu
dest=$1 mode=$2 owner=$3 group=$4; shift 4
mkdir -p -- "$(dirname -- "$dest")"
tmp=$(mktemp -- "$dest.zanuri-XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chown "$owner:$group" "$tmp"
chmod "$mode" "$tmp"
if [ $# -gt 0 ]; then
  for a do shift; if [ "$a" = '{}' ]; then set -- "$@" "$tmp"; else set -- "$@" "$a"; fi; done
  "$@" >&2 || { echo "zanuri: validation refused the new $dest; the old file is untouched" >&2; exit 3; }
fi
if [ -e "$dest" ]; then mkdir -p -- "${backupRoot}$(dirname -- "$dest")"; cp -p -- "$dest" "${backupRoot}$dest"; fi
mv -f -- "$tmp" "$dest"
trap - EXIT`;

const removeScript = `set -eu
mkdir -p -- "${backupRoot}$(dirname -- "$1")"
mv -f -- "$1" "${backupRoot}$1"`;

/** Points a symbolic link at its target, replacing whatever link was there. Arguments: target path. */
const linkScript = `set -eu
mkdir -p -- "$(dirname -- "$2")"
ln -sfn -- "$1" "$2"`;

export function linkCmd(target: string, path: string): Cmd {
  return { argv: ['sh', '-c', linkScript, 'zanuri-link', target, path] };
}

export function aptInstall(packages: readonly string[]): Cmd {
  return {
    argv: ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends',
      '-o', 'DPkg::Lock::Timeout=300', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', '--', ...packages],
  };
}

export const aptUpdate: Cmd = { argv: ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'update', '-q', '-o', 'DPkg::Lock::Timeout=300'] };

export function serviceCmd(unit: string, op: ServiceOp): Cmd {
  return op === 'enable-now' ? { argv: ['systemctl', 'enable', '--now', '--', unit] } : { argv: ['systemctl', op, '--', unit] };
}

export function putCmd(action: Extract<Action, { kind: 'put' }>): Cmd {
  const validate = action.validate?.argv ?? [];
  return {
    argv: ['sh', '-c', putScript, 'zanuri-put', action.path, action.mode.toString(8), action.owner, action.group, ...validate],
    stdin: action.content,
  };
}

export function removeCmd(path: string): Cmd {
  return { argv: ['sh', '-c', removeScript, 'zanuri-remove', path] };
}

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

/** Applies one action; returns the handlers it triggers. Failures throw CommandError with the whole result. */
export async function applyAction(root: RootRunner, action: Action): Promise<Handler[]> {
  switch (action.kind) {
    case 'packages':
      await retry(3, () => root.must(aptUpdate, 'apt-get update', { timeoutMs: 600_000 }));
      await root.must(aptInstall(action.install), `installing ${action.install.join(' ')}`, { timeoutMs: 1_800_000 });
      return [];
    case 'run':
      await root.must(action.cmd, action.display ?? action.why, { timeoutMs: 600_000 });
      return [];
    case 'put': {
      await root.must(putCmd(action), `writing ${action.path}`);
      if (action.validateInPlace) {
        const check = await root.run(action.validateInPlace);
        if (!check.ok) {
          await restoreFile(root, action.path, action.before, action.mode, action.owner, action.group);
          throw new CommandError(check, `validating ${action.path} in place (the previous version was put back)`);
        }
      }
      return action.notify ?? [];
    }
    case 'remove':
      await root.must(removeCmd(action.path), `removing ${action.path}`);
      return action.notify ?? [];
    case 'link':
      await restoreLink(root, action.path, action.target);
      return action.notify ?? [];
    case 'service':
      await root.must(serviceCmd(action.unit, action.op), `systemctl ${action.op} ${action.unit}`);
      return [];
  }
}

/** Puts a file back as it was before the step: its old content, or no file at all. */
export async function restoreFile(root: RootRunner, path: string, before: string | null, mode: number, owner: string, group: string): Promise<void> {
  if (before === null) {
    await root.must({ argv: ['rm', '-f', '--', path] }, `removing ${path}`);
    return;
  }
  await root.must(putCmd({ kind: 'put', path, content: before, mode, owner, group, before: null, why: 'rollback' }), `restoring ${path}`);
}

/** Makes `path` a link to `target`, or removes the link when target is null (also how rollback puts a link back). */
export async function restoreLink(root: RootRunner, path: string, target: string | null): Promise<void> {
  await root.must(target === null ? { argv: ['rm', '-f', '--', path] } : linkCmd(target, path), target === null ? `removing the link ${path}` : `linking ${path} to ${target}`);
}

export function handlerCmd(handler: Handler): Cmd {
  return { argv: ['systemctl', handler.op, '--', handler.unit] };
}

/** Each distinct handler once, restarts winning over reloads of the same unit. */
export function dedupeHandlers(handlers: readonly Handler[]): Handler[] {
  const byUnit = new Map<string, Handler>();
  for (const h of handlers) {
    const seen = byUnit.get(h.unit);
    if (!seen || (seen.op === 'reload' && h.op === 'restart')) byUnit.set(h.unit, h);
  }
  return [...byUnit.values()];
}

export function secretFree(content: string | Secret): string | null {
  return content instanceof Secret ? null : content;
}
