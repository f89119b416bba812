import { describe, expect, it } from 'vitest';
import { parseHostSpec } from '../../../src/core/host-spec.js';

describe('parseHostSpec', () => {
  it('reads user, host and port', () => {
    expect(parseHostSpec('admin@10.0.0.5')).toEqual({ alias: '10.0.0.5', user: 'admin' });
    expect(parseHostSpec('gpu2')).toEqual({ alias: 'gpu2' });
    expect(parseHostSpec('root@gpu2:2222')).toEqual({ alias: 'gpu2', user: 'root', port: 2222 });
    expect(parseHostSpec('[fd00::5]:22')).toEqual({ alias: 'fd00::5', port: 22 });
  });

  it('refuses hostile or malformed hosts instead of passing them on', () => {
    for (const bad of ['a;reboot', '$(id)', 'host name', 'gpu\nreboot', 'h:99999', '', 'a@b@c']) {
      expect(parseHostSpec(bad), bad).toBeNull();
    }
  });
});
