import { describe, expect, it } from 'vitest';
import { parseSshG } from '../../../src/transport/ssh-config.js';
import { defaultServerAliveIntervalMs } from '../../../src/transport/ssh.js';
import { canHold, ConnectionLostError } from '../../../src/transport/connect.js';
import { LocalTransport } from '../../../src/transport/local.js';

describe('keepalives from ssh config', () => {
  it('reads ServerAliveInterval and ServerAliveCountMax as ssh -G prints them', () => {
    const e = parseSshG('hostname 10.0.0.1\nport 22\nserveraliveinterval 2\nserveralivecountmax 5\n', { alias: 'h' });
    expect(e).toMatchObject({ serverAliveIntervalMs: 2000, serverAliveCountMax: 5 });
  });

  it("leaves the interval to zanuri's default when ssh config sets none (ssh -G prints 0) and counts 3, as OpenSSH does", () => {
    const e = parseSshG('hostname 10.0.0.1\nserveraliveinterval 0\nserveralivecountmax 3\n', { alias: 'h' });
    expect(e).toMatchObject({ serverAliveIntervalMs: null, serverAliveCountMax: 3 });
    expect(parseSshG('hostname 10.0.0.1\n', { alias: 'h' })).toMatchObject({ serverAliveIntervalMs: null, serverAliveCountMax: 3 });
    expect(defaultServerAliveIntervalMs).toBe(15_000);
  });
});

describe('ConnectionLostError and holding', () => {
  it('is exit 4 with the stable code CONNECTION_LOST and says why', () => {
    const e = new ConnectionLostError('root@h', 'unresponsive', 'root@h stopped answering');
    expect(e).toMatchObject({ code: 'CONNECTION_LOST', exitCode: 4, reason: 'unresponsive', target: 'root@h', message: 'root@h stopped answering' });
  });

  it('holds commands open only over SSH: a --local run takes no host lock', () => {
    expect(canHold(new LocalTransport())).toBe(false);
  });
});
