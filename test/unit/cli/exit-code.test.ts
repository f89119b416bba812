import { describe, expect, it } from 'vitest';
import { worstExitCode } from '../../../src/cli/exit-code.js';

describe('worstExitCode', () => {
  it('lets the most serious host decide, as the README documents (5 > 4 > 2 > 6, 7 > 3 > 0)', () => {
    expect(worstExitCode([])).toBe(0);
    expect(worstExitCode([0, 3, 0])).toBe(3);
    expect(worstExitCode([3, 6])).toBe(6);
    expect(worstExitCode([6, 2])).toBe(2);
    expect(worstExitCode([2, 4, 3])).toBe(4);
    expect(worstExitCode([4, 5, 0])).toBe(5);
  });
});
