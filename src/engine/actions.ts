import { createHash } from 'node:crypto';
import { createTwoFilesPatch } from 'diff';
import { CommandError, ConfigError, StepFailedError } from '../core/errors.js';
import { octal, type Action, type FileSnapshot, type Handler, type ServiceOp } from '../core/plan.js';
import { renderArgv } from '../core/quote.js';
import { Secret } from '../core/secret.js';
import type { Cmd, RunResult } from '../core/types.js';
import {
  aptBoundsEnv, aptBoundsFrom, aptGetIndex, aptGuarded, aptSubcommand, aptInstallCmd, aptUpdateCmd, installBudgetSeconds, lockGaveUpExit, updateBudgetSeconds, type AptBounds,
} from '../resources/apt.js';
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
 * How long one validation may take (visudo, sshd -t, nginx -t, postgres -C, fail2ban-client -t):
 * a check that hangs counts as a refusal, and the previous version is put back.
 */
export const defaultValidationSeconds = 120;

/** The bounds of this run: apt's from ZANURI_APT_LOCK_TIMEOUT and ZANURI_APT_NET_TIMEOUT, validation's from ZANURI_VALIDATE_TIMEOUT. */
export function runBounds(env: Readonly<Record<string, string | undefined>> = process.env): { apt: AptBounds; validationSeconds: number } {
  try {
    const apt = aptBoundsFrom(env);
    const raw = env['ZANURI_VALIDATE_TIMEOUT'];
    if (raw !== undefined && raw !== '' && (!/^[0-9]{1,5}$/.test(raw) || Number(raw) < 1)) throw new RangeError(`ZANURI_VALIDATE_TIMEOUT must be a whole number of seconds, not ${JSON.stringify(raw.slice(0, 40))}`);
    return { apt, validationSeconds: raw ? Number(raw) : defaultValidationSeconds };
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
}

/** Exit codes of the scripts below: the staged copy was refused, the change was refused in place (and undone), the bytes arrived wrong. */
const refusedStaged = 3;
const refusedInPlace = 5;
const arrivedWrong = 4;

/** A check under the validation deadline; a host without timeout(1) runs it unbounded. */
const boundedFn = `bounded() { if command -v timeout >/dev/null 2>&1; then timeout -k 5 "$vt" "$@"; else "$@"; fi; }`;

/**
 * Replaces a file atomically. The content arrives base64-encoded on stdin (exact bytes over any
 * transport) and is checked against its size and sha256 before anything else: a dropped connection
 * can never rename a truncated file into place. Then owner and mode, optional validation of the
 * staged copy ('{}' in its argv is the temp path), a copy of the old file in the backup tree,
 * fsync, rename, and the optional check in place.
 *
 * A check in place (sshd -t, nginx -t: they read the whole configuration tree, so only the file in
 * its place can be judged) runs in this same script, and a refusal puts the previous version back
 * here too, from the backup copy. The script ignores HUP and PIPE and every check has a deadline, so
 * neither a dropped connection nor a hung check can leave an unchecked file in place: the host ends
 * with the new file checked, or the old one back. (Only a host that dies in those seconds can.)
 * Arguments: dest mode owner group size sha256 validation-seconds n [n staged-check argv...] [in-place argv...].
 */
const putScript = `set -eu
trap '' HUP PIPE
dest=$1 mode=$2 owner=$3 group=$4 size=$5 sum=$6 vt=$7 n=$8; shift 8
${boundedFn}
staged() { i=0; for a do shift; if [ $i -lt $n ]; then if [ "$a" = '{}' ]; then set -- "$@" "$tmp"; else set -- "$@" "$a"; fi; fi; i=$((i + 1)); done; [ $# -eq 0 ] || bounded "$@"; }
inplace() { i=0; for a do shift; if [ $i -ge $n ]; then set -- "$@" "$a"; fi; i=$((i + 1)); done; [ $# -eq 0 ] || bounded "$@"; }
mkdir -p -- "$(dirname -- "$dest")"
tmp=$(mktemp -- "$dest.zanuri-XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
base64 -d > "$tmp"
if [ "$(wc -c < "$tmp")" -ne "$size" ] || [ "$(sha256sum < "$tmp" | cut -d' ' -f1)" != "$sum" ]; then
  echo "zanuri: the new $dest arrived incomplete or changed; the old file is untouched" >&2; exit ${arrivedWrong}
fi
chown "$owner:$group" "$tmp"
chmod "$mode" "$tmp"
if ! staged "$@" >&2; then echo "zanuri: validation refused the new $dest (or did not finish within \${vt}s); the old file is untouched" >&2; exit ${refusedStaged}; fi
bak=${backupRoot}$dest had=0
if [ -e "$dest" ]; then had=1; mkdir -p -- "$(dirname -- "$bak")"; cp -p -- "$dest" "$bak"; fi
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$dest"
trap - EXIT
if [ $# -gt "$n" ] && ! inplace "$@" >&2; then
  if [ $had = 1 ]; then back=$(mktemp -- "$dest.zanuri-XXXXXX"); cp -p -- "$bak" "$back"; mv -f -- "$back" "$dest"; else rm -f -- "$dest"; fi
  echo "zanuri: the new $dest was refused in place (or its check did not finish within \${vt}s); the previous version is back" >&2; exit ${refusedInPlace}
fi`;

/** Moves a file to the backup tree; with a check in place, puts it back when the check refuses. Arguments: path validation-seconds [in-place argv...]. */
const removeScript = `set -eu
trap '' HUP PIPE
path=$1 vt=$2; shift 2
${boundedFn}
bak=${backupRoot}$path
mkdir -p -- "$(dirname -- "$bak")"
mv -f -- "$path" "$bak"
if [ $# -gt 0 ] && ! bounded "$@" >&2; then
  back=$(mktemp -- "$path.zanuri-XXXXXX"); cp -p -- "$bak" "$back"; mv -f -- "$back" "$path"
  echo "zanuri: removing $path was refused in place (or its check did not finish within \${vt}s); the file is back" >&2; exit ${refusedInPlace}
fi`;

/**
 * Points a symbolic link at its target ('' removes it); with a check in place, points it back where it
 * pointed when the check refuses. Arguments: target path validation-seconds [in-place argv...].
 */
const linkScript = `set -eu
trap '' HUP PIPE
target=$1 path=$2 vt=$3; shift 3
${boundedFn}
old=$(readlink -- "$path" 2>/dev/null || true)
if [ -n "$target" ]; then mkdir -p -- "$(dirname -- "$path")"; ln -sfn -- "$target" "$path"; else rm -f -- "$path"; fi
if [ $# -gt 0 ] && ! bounded "$@" >&2; then
  if [ -n "$old" ]; then ln -sfn -- "$old" "$path"; else rm -f -- "$path"; fi
  echo "zanuri: the link $path was refused in place (or its check did not finish within \${vt}s); it points where it did" >&2; exit ${refusedInPlace}
fi`;

const bytesOf = (content: string | Buffer | Secret): Buffer =>
  Buffer.isBuffer(content) ? content : Buffer.from(content instanceof Secret ? content.reveal() : content, 'utf8');

export function putCmd(path: string, content: string | Buffer | Secret, mode: number, owner: string, group: string, validate?: Cmd, validateInPlace?: Cmd, validationSeconds = defaultValidationSeconds): Cmd {
  const bytes = bytesOf(content);
  const encoded = bytes.toString('base64');
  const staged = validate?.argv ?? [];
  return {
    argv: ['sh', '-c', putScript, 'zanuri-put', path, mode.toString(8), owner, group, String(bytes.length), createHash('sha256').update(bytes).digest('hex'),
      String(validationSeconds), String(staged.length), ...staged, ...(validateInPlace?.argv ?? [])],
    stdin: content instanceof Secret ? new Secret(encoded) : encoded,
  };
}

/** A script's deadline: its checks (each bounded by validationSeconds) and the transfer around them. */
const scriptTimeoutMs = (validationSeconds: number): number => (2 * validationSeconds + 120) * 1000;

/** Runs one of the scripts above; exit 5 means the check in place refused and the script put the previous state back. */
async function mustChecked(root: RootRunner, cmd: Cmd, what: string, inPlace: string, validationSeconds: number): Promise<void> {
  const result = await root.run(cmd, { timeoutMs: scriptTimeoutMs(validationSeconds) });
  if (result.ok) return;
  throw new CommandError(result, result.exitCode === refusedInPlace ? `validating ${inPlace} in place (the previous version was put back)` : what);
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
  await root.must(putCmd(path, before.content, before.mode, before.owner, before.group), `restoring ${path}`, { timeoutMs: scriptTimeoutMs(0) });
}

const linkCmd = (path: string, target: string | null, validateInPlace: Cmd | undefined, validationSeconds: number): Cmd =>
  ({ argv: ['sh', '-c', linkScript, 'zanuri-link', target ?? '', path, String(validationSeconds), ...(validateInPlace?.argv ?? [])] });

function unifiedDiff(path: string, before: Buffer | null, after: string | Buffer | Secret): string {
  if (after instanceof Secret) return `--- ${path}\n+++ ${path}\n(secret content: not shown)\n`;
  const text = (b: Buffer | string): string => (typeof b === 'string' ? b : b.toString('utf8'));
  return createTwoFilesPatch(before === null ? '/dev/null' : path, path, before === null ? '' : text(before), text(after), undefined, undefined, { context: 3 })
    .split('\n').slice(1).join('\n');
}

const none = async (): Promise<Handler[]> => [];

/** Lines apt prints on any host without apt-utils or a terminal: never the reason anything failed. */
const aptNoise = /^(?:debconf: (?:delaying package configuration|unable to initiali[sz]e frontend|\(|falling back to frontend)|dpkg-preconfigure: )/;

/**
 * The reason apt failed, in apt's and dpkg's own words: dpkg's error lines first, from either stream
 * (apt's "Sub-process /usr/bin/dpkg returned an error code (1)" alone does not say that the disk is
 * full or which maintainer script failed), then apt's last error lines; its output when it printed no error,
 * and its last output line when it was killed at its deadline.
 */
export function aptFailureReason(result: Pick<RunResult, 'stdout' | 'stderr' | 'exitCode'>): string {
  const lines = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter((l) => l && !aptNoise.test(l));
  const err = lines(result.stderr);
  const dpkg = [...lines(result.stdout), ...err].filter((l) => /^dpkg: (?:error|unrecoverable)|No space left on device/i.test(l));
  const picked = [...new Set([...dpkg.slice(-2), ...(err.length ? err : lines(result.stdout)).slice(-3)])];
  // Killed at its deadline, apt said no error: its last line says what it was still fetching (a hung mirror or proxy).
  const last = result.exitCode === null ? lines(result.stdout).at(-1) : undefined;
  if (last && !picked.includes(last)) picked.push(`apt's last output: ${last}`);
  return picked.join(' | ') || `exit ${result.exitCode ?? 'killed'}`;
}

/** What the operator does next, from what apt and dpkg said. */
export function aptFailureHint(result: Pick<RunResult, 'stdout' | 'stderr' | 'exitCode'>): string {
  const said = `${result.stdout}\n${result.stderr}`;
  if (result.exitCode === lockGaveUpExit) return `wait for that process to finish, or raise the bound (${aptBoundsEnv.lockWaitSeconds}=SECONDS), and run again`;
  if (/No space left on device/i.test(said)) return 'free space on the host (df -h names the full filesystem), then run again: the next run finishes what dpkg left half-done first';
  if (/^dpkg: (?:error|unrecoverable)/im.test(said)) return 'dpkg failed on the host (its error is above; /var/log/dpkg.log has the rest): fix that, then run again';
  return 'check the host\'s apt sources and its mirror or proxy (apt-get update on the host), then run again';
}

/**
 * Runs an apt-get command under its bounds: the lock wait and apt's network timeouts (aptGuarded), and
 * a deadline for the whole command after which it is killed on the host. `apt-get update` is tried
 * again while its time budget lasts (a flaky mirror), never after a lock that stayed held or a
 * deadline that passed: those already took their whole bound. A failure is the step's (exit 6), its
 * reason apt's own last lines.
 */
export async function runApt(root: RootRunner, cmd: Cmd, what: string, bounds: AptBounds = runBounds().apt): Promise<RunResult> {
  const update = aptSubcommand(cmd) === 'update';
  const budgetMs = (update ? updateBudgetSeconds(bounds) : installBudgetSeconds(bounds)) * 1000;
  const started = Date.now();
  for (let attempt = 1; ; attempt += 1) {
    const leftMs = budgetMs - (Date.now() - started);
    const result = await root.run(aptGuarded(cmd, bounds), { timeoutMs: bounds.lockWaitSeconds * 1000 + Math.max(leftMs, 1000) });
    for (const line of result.stderr.split('\n')) if (line.startsWith('zanuri: waited ')) root.note(line.slice('zanuri: '.length));
    if (result.ok) return result;
    const final = !update || attempt >= 3 || result.exitCode === null || result.exitCode === lockGaveUpExit || budgetMs - (Date.now() - started) < 2000 * attempt;
    if (final) {
      const bound = result.exitCode === null ? ` (its bound: ${bounds.lockWaitSeconds} s for the locks + ${Math.round(budgetMs / 1000)} s)` : '';
      throw new StepFailedError(result.target, `${what} failed on ${result.target}${attempt > 1 ? ` after ${attempt} attempts` : ''}${bound}: ${aptFailureReason(result)}`, {
        hint: aptFailureHint(result),
      });
    }
    await new Promise((r) => setTimeout(r, 2000 * attempt));
  }
}

const isApt = (cmd: Cmd): boolean => aptGetIndex(cmd) >= 0;

const kinds: { [K in Action['kind']]: ActionKind<Extract<Action, { kind: K }>> } = {
  packages: {
    async apply(root, a) {
      const { apt } = runBounds();
      await runApt(root, aptUpdateCmd, 'apt-get update', apt);
      await runApt(root, aptInstallCmd(a.install), `installing ${a.install.join(' ')}`, apt);
      return [];
    },
    undo: none,
    view: (a) => ({ summary: `apt-get install ${a.install.join(' ')}` }),
  },
  run: {
    async apply(root, a) {
      if (isApt(a.cmd)) await runApt(root, a.cmd, a.display ?? a.why);
      else await root.must(a.cmd, a.display ?? a.why, { timeoutMs: 600_000 });
      return a.notify ?? [];
    },
    async undo(root, a) {
      if (!a.undo) return [];
      const what = `undoing: ${a.display ?? renderArgv(a.cmd.argv)}`;
      if (isApt(a.undo)) await runApt(root, a.undo, what);
      else await root.must(a.undo, what, { timeoutMs: 600_000 });
      return a.notify ?? [];
    },
    view: (a) => ({ summary: a.display ?? renderArgv(a.cmd.argv) }),
  },
  put: {
    async apply(root, a) {
      const { validationSeconds } = runBounds();
      await mustChecked(root, putCmd(a.path, a.content, a.mode, a.owner, a.group, a.validate, a.validateInPlace, validationSeconds), `writing ${a.path}`, a.path, validationSeconds);
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
      const { validationSeconds } = runBounds();
      const cmd: Cmd = { argv: ['sh', '-c', removeScript, 'zanuri-remove', a.path, String(validationSeconds), ...(a.validateInPlace?.argv ?? [])] };
      await mustChecked(root, cmd, `removing ${a.path}`, `the removal of ${a.path}`, validationSeconds);
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
      const { validationSeconds } = runBounds();
      await mustChecked(root, linkCmd(a.path, a.target, a.validateInPlace, validationSeconds), a.target === null ? `removing the link ${a.path}` : `linking ${a.path} to ${a.target}`,
        `the link ${a.path}`, validationSeconds);
      return a.notify ?? [];
    },
    async undo(root, a) {
      await root.must(linkCmd(a.path, a.before, undefined, 0), a.before === null ? `removing the link ${a.path}` : `linking ${a.path} back to ${a.before}`);
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
