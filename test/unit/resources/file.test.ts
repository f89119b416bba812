import { describe, expect, it } from 'vitest';
import { Secret } from '../../../src/core/secret.js';
import { fileFact } from '../../../src/facts/state.js';
import { absent, file } from '../../../src/resources/file.js';
import { factsOf, present } from '../steps/facts-of.js';

const path = '/etc/zanuri/x.conf';
const latin1 = Buffer.from([0x23, 0x20, 0x63, 0x61, 0x66, 0xe9, 0x0a]);

describe('the file resource', () => {
  it('creates a missing file with its mode, owner and group, and says why in the step\'s words', () => {
    const r = file(path, { text: 'a = 1\n', source: 'template x.conf' }, { mode: 0o640, owner: 'root', group: 'adm', whyMissing: 'x is not configured' });
    expect(r.plan(factsOf([[fileFact(path), 'absent']]))).toEqual([{
      kind: 'put', path, content: 'a = 1\n', mode: 0o640, owner: 'root', group: 'adm', before: null, why: 'x is not configured', source: 'template x.conf',
    }]);
  });

  it('is converged only when bytes, mode, owner and group all match', () => {
    const r = file(path, 'a = 1\n', { mode: 0o600, owner: 'postgres' });
    expect(r.plan(factsOf([[fileFact(path), present('a = 1\n', '600', 'postgres')]]))).toEqual([]);
    expect(r.plan(factsOf([[fileFact(path), present('a = 2\n', '600', 'postgres')]]))[0]).toMatchObject({ kind: 'put', why: `${path} differs from the declared content` });
    for (const [mode, owner, group] of [['644', 'postgres', 'postgres'], ['600', 'root', 'postgres'], ['600', 'postgres', 'root']] as const) {
      expect(r.plan(factsOf([[fileFact(path), present('a = 1\n', mode, owner, group)]])), `${mode} ${owner}:${group}`).toEqual([expect.objectContaining({ kind: 'chmod', mode: 0o600, owner: 'postgres', group: 'postgres' })]);
    }
  });

  it('keeps the old file whole for the undo: exact bytes that are not UTF-8, mode, owner and group', () => {
    const [put] = file(path, 'new\n').plan(factsOf([[fileFact(path), present(latin1, '600', 'nobody', 'nogroup')]]));
    expect(put).toMatchObject({ kind: 'put', before: { mode: 0o600, owner: 'nobody', group: 'nogroup' } });
    expect((put as { before: { content: Buffer } }).before.content.equals(latin1)).toBe(true);
  });

  it('compares a secret by its value and keeps it a Secret in the action', () => {
    const secret = new Secret('pw=hunter2\n');
    expect(file(path, { text: secret }, { mode: 0o600 }).plan(factsOf([[fileFact(path), present('pw=hunter2\n', '600')]]))).toEqual([]);
    const [put] = file(path, { text: secret }, { mode: 0o600 }).plan(factsOf([[fileFact(path), 'absent']]));
    expect((put as { content: unknown }).content).toBe(secret);
    expect(JSON.stringify(put)).not.toContain('hunter2');
  });

  it('removes a file only when it is there, keeping it for the undo', () => {
    expect(absent(path).plan(factsOf([[fileFact(path), 'absent']]))).toEqual([]);
    expect(absent(path, { why: 'the stock site is enabled' }).plan(factsOf([[fileFact(path), present('x', '644')]]))).toEqual([
      { kind: 'remove', path, before: { content: Buffer.from('x'), mode: 0o644, owner: 'root', group: 'root' }, why: 'the stock site is enabled' },
    ]);
  });
});
