import { describe, expect, it } from 'vitest';
import { atLeast, compareVersions } from '../../../src/core/version.js';

describe('compareVersions', () => {
  it('compares numerically, not as text', () => {
    expect(compareVersions('5.10', '5.4')).toBe(1);
    expect(compareVersions('535.104.05', '535')).toBe(1);
    expect(compareVersions('12.1', '12.1.0')).toBe(0);
    expect(compareVersions('22.04', '22.10')).toBe(-1);
  });

  it('reads kernel release strings up to their first non-numeric part', () => {
    expect(atLeast('6.1.0-18-amd64', '5.4')).toBe(true);
    expect(atLeast('4.19.0-27-amd64', '5.4')).toBe(false);
  });

  it('judges driver and CUDA minimums as versions', () => {
    expect(atLeast('550.54.15', '535')).toBe(true);
    expect(atLeast('525.147.05', '535')).toBe(false);
    expect(atLeast('12.0', '12.1')).toBe(false);
    expect(atLeast('13.0', '12.1')).toBe(true);
  });
});
