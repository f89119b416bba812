import type { Transport } from '../core/types.js';
import type { SshConnectOptions } from './ssh.js';

export type ConnectOptions = SshConnectOptions;

/** A transport to `host`, or to this machine when host is null. Each stack loads only when needed. */
export async function connect(host: string | null, options: ConnectOptions = {}): Promise<Transport> {
  if (host === null) {
    const { LocalTransport } = await import('./local.js');
    return new LocalTransport();
  }
  const { SshTransport } = await import('./ssh.js');
  return SshTransport.connect(host, options);
}

export { canHold, ConnectionLostError, type HeldCommand, type HoldOptions, type Holding } from './session.js';
