import type { Secret } from './secret.js';
import type { Cmd } from './types.js';

/**
 * What a step wants done, as data. Steps only return plans; the engine alone applies them, so a
 * dry run and a real run cannot disagree. Every action says why.
 */
export type ServiceOp = 'enable' | 'start' | 'reload' | 'restart' | 'enable-now' | 'stop' | 'disable';

export interface Handler {
  unit: string;
  op: 'reload' | 'restart';
}

export type Action =
  /** Install Debian packages (never upgrades what is installed). The engine merges these into one apt transaction. */
  | { kind: 'packages'; install: string[]; why: string }
  | { kind: 'run'; cmd: Cmd; why: string; /** Shown instead of the command when it carries secrets. */ display?: string }
  | {
      kind: 'put';
      path: string;
      content: string | Secret;
      mode: number;
      owner: string;
      group: string;
      /** Current content, null when the file does not exist; for the diff and for rollback. */
      before: string | null;
      /** Run on the staged temp file before it replaces the old one; '{}' in argv stands for its path. */
      validate?: Cmd;
      /** Run after the file is in place and before any handler; on failure the old file is put back. */
      validateInPlace?: Cmd;
      /** Services to reload or restart once, at the end of the step, because this file changed. */
      notify?: Handler[];
      why: string;
    }
  | { kind: 'remove'; path: string; before: string; notify?: Handler[]; why: string }
  /**
   * A symbolic link at `path` pointing to `target`, or no link there when target is null; `before` is
   * where it pointed (null: no link), for rollback.
   */
  | { kind: 'link'; path: string; target: string | null; before: string | null; notify?: Handler[]; why: string }
  | { kind: 'service'; unit: string; op: ServiceOp; why: string };

export type Plan = { actions: [Action, ...Action[]] } | { actions: []; noop: string };

export const noop = (why: string): Plan => ({ actions: [], noop: why });

export function plan(actions: Action[], whenEmpty: string): Plan {
  const [first, ...rest] = actions;
  return first ? { actions: [first, ...rest] } : { actions: [], noop: whenEmpty };
}
