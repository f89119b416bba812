import type { Secret } from './secret.js';
import type { Cmd } from './types.js';

/**
 * What a step wants done, as data. Steps declare resources; resources turn facts into actions; the
 * engine alone applies them, so a dry run and a real run cannot disagree. Every action says why.
 */
export type ServiceOp = 'enable' | 'start' | 'reload' | 'restart' | 'enable-now' | 'stop' | 'disable';

export interface Handler {
  unit: string;
  op: 'reload' | 'restart';
}

/** A file as it was: exact bytes, mode, owner and group, so an undo puts back all four. */
export interface FileSnapshot {
  content: Buffer;
  mode: number;
  owner: string;
  group: string;
}

export type Action =
  /** Install Debian packages (never upgrades what is installed). The engine merges these into one apt transaction. */
  | { kind: 'packages'; install: string[]; why: string }
  | {
      kind: 'run'; cmd: Cmd; why: string;
      /** Shown instead of the command when it carries secrets. */
      display?: string;
      /** Run on rollback when this action had been applied. */
      undo?: Cmd;
      notify?: Handler[];
    }
  | {
      kind: 'put';
      path: string;
      content: string | Buffer | Secret;
      mode: number;
      owner: string;
      group: string;
      /** The file before, null when it does not exist; for the diff and for rollback. */
      before: FileSnapshot | null;
      /** Run on the staged temp file before it replaces the old one; '{}' in argv stands for its path. */
      validate?: Cmd;
      /** Run after the file is in place and before any handler; on failure the old file is put back. */
      validateInPlace?: Cmd;
      /** Services to reload or restart once, at the end of the step, because this file changed. */
      notify?: Handler[];
      /** Where the content came from: a template and, when an operator overrides it, the override file. */
      source?: string;
      why: string;
    }
  | { kind: 'remove'; path: string; before: FileSnapshot; validateInPlace?: Cmd; notify?: Handler[]; why: string }
  /** Owner, group and mode of an existing file, content untouched. */
  | { kind: 'chmod'; path: string; mode: number; owner: string; group: string; before: { mode: number; owner: string; group: string }; notify?: Handler[]; why: string }
  /** A directory with its mode and owner; `before` null when it did not exist (rollback removes it if still empty). */
  | { kind: 'directory'; path: string; mode: number; owner: string; group: string; before: { mode: number; owner: string; group: string } | null; why: string }
  /**
   * A symbolic link at `path` pointing to `target`, or no link there when target is null; `before` is
   * where it pointed (null: no link), for rollback.
   */
  | { kind: 'link'; path: string; target: string | null; before: string | null; validateInPlace?: Cmd; notify?: Handler[]; why: string }
  | { kind: 'service'; unit: string; op: ServiceOp; why: string }
  /** Reboot the host, wait for it to come back and read the facts again. */
  | { kind: 'reboot'; why: string };

export type Plan = { actions: [Action, ...Action[]] } | { actions: []; noop: string };

export const noop = (why: string): Plan => ({ actions: [], noop: why });

export function plan(actions: Action[], whenEmpty: string): Plan {
  const [first, ...rest] = actions;
  return first ? { actions: [first, ...rest] } : { actions: [], noop: whenEmpty };
}

/** An octal mode as stat and the reports print it: 0644. */
export const octal = (mode: number): string => mode.toString(8).padStart(4, '0');
