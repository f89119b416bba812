import { accessSync, constants } from 'node:fs';
import { Option, type Command } from 'commander';
import { UsageError } from '../core/errors.js';
import { parseHostSpec } from '../core/host-spec.js';
import type { ConnectOptions } from '../transport/connect.js';

/** The SSH flags every command that reaches hosts shares. */
export interface SshFlags {
  sshConfig?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  identity?: string[];
  connectTimeout?: number;
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];

export const positive = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive whole number, got "${value}"`);
  return n;
};

export function addSshOptions(command: Command): Command {
  return command
    .option('-F, --ssh-config <file>', 'ssh config file to use instead of ~/.ssh/config')
    .option('--known-hosts <file>', 'known_hosts file to use instead of the ones ssh config names')
    .option('--accept-new-host-key', 'record the key of a host not yet in known_hosts (a changed key is always refused)')
    .option('-i, --identity <file>', 'private key to offer first (repeatable)', collect)
    .addOption(new Option('--connect-timeout <seconds>', 'SSH connection timeout').argParser(positive('--connect-timeout')));
}

/** Checks the key files exist before anything connects, and turns the flags into transport options. */
export function connectOptions(flags: SshFlags): ConnectOptions {
  for (const file of flags.identity ?? []) {
    try {
      accessSync(file, constants.R_OK);
    } catch {
      throw new UsageError(`cannot read the key file ${file}`);
    }
  }
  return {
    ...(flags.sshConfig ? { configFile: flags.sshConfig } : {}),
    ...(flags.knownHosts ? { knownHostsFile: flags.knownHosts } : {}),
    acceptNewHostKey: flags.acceptNewHostKey === true,
    identityFiles: flags.identity ?? [],
    ...(flags.connectTimeout ? { connectTimeoutMs: flags.connectTimeout * 1000 } : {}),
  };
}

/** Refuses anything that is not [user@]host[:port] or an alias, before any connection. */
export function checkHostSpecs(hosts: readonly string[]): void {
  for (const host of hosts) {
    if (!parseHostSpec(host)) throw new UsageError(`"${host.replace(/[^\x20-\x7e]/g, '?')}" is not a host: expected [user@]host[:port] or an ssh config alias`);
  }
}
