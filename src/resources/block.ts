import { ConfigError } from '../core/errors.js';

/**
 * A marked block inside a file others edit too (Ansible's blockinfile): zanuri owns the lines from
 * `begin` to `end` and nothing else. The block goes first in the file, where a first-match file
 * (pg_hba.conf) makes its rules take effect; the rest of the file is kept byte for byte.
 */
export interface Markers { begin: string; end: string }

/** The file with `block` (which starts with markers.begin and ends with markers.end) first and the rest kept. */
export function withBlock(current: string | null, block: string, markers: Markers, path: string): string {
  const text = block.endsWith('\n') ? block : `${block}\n`;
  if (current === null) return text;
  const lines = current.split('\n');
  const begins = lines.flatMap((l, i) => (l.trim() === markers.begin ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === markers.end ? [i] : []));
  if (!begins.length && !ends.length) return text + current;
  const [begin] = begins;
  const [end] = ends;
  if (begins.length !== 1 || ends.length !== 1 || begin === undefined || end === undefined || end < begin) {
    throw new ConfigError(`${path} has ${begins.length} "${markers.begin}" and ${ends.length} "${markers.end}" lines: zanuri needs exactly one of each, in order, to know which lines are its own`, {
      hint: 'mend the markers by hand (remove both to let zanuri add a fresh block first in the file)',
    });
  }
  return text + [...lines.slice(0, begin), ...lines.slice(end + 1)].join('\n');
}
