import { describe, expect, it } from 'vitest';
import { terminalSafe } from '../../../src/core/terminal.js';

describe('terminalSafe', () => {
  it('keeps colours, newlines and tabs', () => {
    expect(terminalSafe('\x1b[31mred\x1b[0m\tx\ny')).toBe('\x1b[31mred\x1b[0m\tx\ny');
  });

  it('drops window titles, clipboard writes, cursor moves, screen clears, carriage returns and other controls', () => {
    const hostile = 'model\x1b]0;pwned\x07-\x1b]52;c;ZWNobyBoaQ==\x1b\\-\x1b[2J\x1b[1A\rhidden\x08\x00\x9b2J-\x1bPq#0\x1b\\end';
    expect(terminalSafe(hostile)).toBe('model--hidden-end');
  });

  it('turns CRLF into a plain newline', () => {
    expect(terminalSafe('a\r\nb')).toBe('a\nb');
  });
});
