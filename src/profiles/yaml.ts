/**
 * YAML text to plain data with file:line:col errors, for files other than profiles (Ansible
 * inventories and their group_vars/host_vars): profiles/ owns the yaml package, and inventory/
 * receives this function from its caller instead of importing yaml itself. YAML 1.1, as Ansible's
 * PyYAML reads it (yes/no are booleans).
 */
import { LineCounter, parseDocument, visit, type Document } from 'yaml';
import { ConfigError } from '../core/errors.js';

/**
 * A document as plain data, refusing what a hostile file uses: aliases that expand into millions of
 * nodes ("billion laughs": yaml counts each alias by the nodes it copies and stops past the cap) and
 * tags zanuri does not know (`!!js/function`, `!ruby/object`). Either is a configuration error at the
 * file:line:col of the first alias or tag, exit 2, never a stack trace.
 */
export function plainData(doc: Document, lines: LineCounter, file: string, maxAliasCount = 100): unknown {
  const at = (offset: number | undefined): string => {
    const { line, col } = lines.linePos(offset ?? 0);
    return `${file}:${line}:${col}`;
  };
  const tag = doc.warnings.find((w) => w.code === 'TAG_RESOLVE_FAILED');
  if (tag) throw new ConfigError('unknown YAML tag: zanuri reads plain YAML (mappings, lists, strings, numbers, booleans)', { location: at(tag.pos[0]), hint: 'remove the !tag' });
  try {
    return doc.toJS({ maxAliasCount });
  } catch (error) {
    if (!(error instanceof ReferenceError) || !/alias/i.test(error.message)) throw error;
    let offset: number | undefined;
    visit(doc, { Alias(_, node) { offset = node.range?.[0]; return visit.BREAK; } });
    throw new ConfigError(`too many YAML alias expansions (more than ${maxAliasCount}): a file that expands aliases this much is refused`, {
      location: at(offset), hint: 'write the values out, or use fewer nested aliases',
    });
  }
}

export function parseYamlText(text: string, file: string): unknown {
  const lines = new LineCounter();
  // A key given twice is refused: Ansible keeps the last value with a warning, and a value that is not the one read is a surprise.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true, version: '1.1' });
  const error = doc.errors[0];
  if (error) {
    const { line, col } = lines.linePos(error.pos[0]);
    if (error.code === 'DUPLICATE_KEY') throw new ConfigError('a key is given twice in the same mapping', { location: `${file}:${line}:${col}`, hint: 'keep one of them' });
    throw new ConfigError(`malformed YAML: ${error.message.split('\n')[0]}`, { location: `${file}:${line}:${col}`, hint: 'check indentation and quoting around this position' });
  }
  return plainData(doc, lines, file, 1000);
}
