import { createTwoFilesPatch } from 'diff';
import type { Action } from '../core/plan.js';
import { renderArgv } from '../core/quote.js';
import { Secret } from '../core/secret.js';

/** An action as the dry run and the report show it: one line, plus a unified diff for files. */
export interface ActionView {
  kind: Action['kind'];
  summary: string;
  why: string;
  diff?: string;
}

function unifiedDiff(path: string, before: string | null, after: string | Secret): string {
  if (after instanceof Secret) return `--- ${path}\n+++ ${path}\n(secret content: not shown)\n`;
  return createTwoFilesPatch(before === null ? '/dev/null' : path, path, before ?? '', after, undefined, undefined, { context: 3 })
    .split('\n').slice(1).join('\n');
}

export function viewAction(action: Action): ActionView {
  switch (action.kind) {
    case 'packages':
      return { kind: action.kind, summary: `apt-get install ${action.install.join(' ')}`, why: action.why };
    case 'run':
      return { kind: action.kind, summary: action.display ?? renderArgv(action.cmd.argv), why: action.why };
    case 'put':
      return {
        kind: action.kind,
        summary: `${action.before === null ? 'create' : 'update'} ${action.path} (${action.owner}:${action.group} ${action.mode.toString(8).padStart(4, '0')})`,
        why: action.why,
        diff: unifiedDiff(action.path, action.before, action.content),
      };
    case 'remove':
      return { kind: action.kind, summary: `remove ${action.path}`, why: action.why, diff: unifiedDiff(action.path, action.before, '') };
    case 'link':
      return {
        kind: action.kind,
        summary: `${action.target === null ? `remove the link ${action.path}` : `link ${action.path} -> ${action.target}`}${action.before === null ? '' : ` (was -> ${action.before})`}`,
        why: action.why,
      };
    case 'service':
      return { kind: action.kind, summary: `systemctl ${action.op === 'enable-now' ? 'enable --now' : action.op} ${action.unit}`, why: action.why };
  }
}
