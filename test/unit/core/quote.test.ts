import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { quoteArg, renderArgv } from '../../../src/core/quote.js';

const hostile = [
  "'; $(reboot)",
  '`id`',
  '$(touch /tmp/zanuri-pwned)',
  'a;reboot',
  "it's \"quoted\"",
  "''''",
  'line one\nline two\n',
  '\\n and \\ backslash',
  '$HOME ${IFS} $1 $@ *',
  'tab\there',
  '-rf',
  '',
  'ünïcödé ✓ 漢字',
  '!history !!',
  "'",
];

describe('quoteArg', () => {
  it('leaves plain words alone so commands stay readable', () => {
    expect(renderArgv(['apt-get', 'install', '-y', 'nginx=1.22.1', '/etc/ssh/sshd_config.d/zanuri.conf'])).toBe(
      'apt-get install -y nginx=1.22.1 /etc/ssh/sshd_config.d/zanuri.conf',
    );
  });

  it('quotes the empty string as an argument of its own', () => {
    expect(quoteArg('')).toBe("''");
  });

  for (const shell of ['dash', 'bash']) {
    it(`gives ${shell} back every hostile value byte for byte`, () => {
      for (const value of hostile) {
        const out = execFileSync(shell, ['-c', `printf '%s' ${quoteArg(value)}`]);
        expect(out.toString('utf8')).toBe(value);
      }
    });

    it(`keeps a whole hostile argv as separate arguments under ${shell}`, () => {
      const out = execFileSync(shell, ['-c', `for a in ${renderArgv(hostile)}; do printf '<%s>' "$a"; done`]);
      expect(out.toString('utf8')).toBe(hostile.map((v) => `<${v}>`).join(''));
    });
  }

  it('refuses a NUL byte, which no shell argument can carry', () => {
    expect(() => quoteArg('a\0b')).toThrow(/NUL/);
  });
});
