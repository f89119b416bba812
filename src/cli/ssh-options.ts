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
  /**
   * The model server as the host sees it (provision's --bench-endpoint, bench's --endpoint): reached
   * through the SSH connection, so it is checked with the SSH flags, before the first connection
   * (it used to be checked only when the benchmark began, after ufw and fail2ban had changed the host).
   */
  benchEndpoint?: string;
  endpoint?: string;
}

/** An http(s) URL of a host name or address, an optional port and a plain path: nothing else reaches a request or a port forward. */
const endpointPattern = /^https?:\/\/(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::(\d{1,5}))?(?:\/[A-Za-z0-9._~+,=:@%/-]{0,500})?$/;

export function checkEndpoint(flag: string, value: string): void {
  const port = endpointPattern.exec(value)?.[1];
  let url: URL | null = null;
  try {
    url = endpointPattern.test(value) ? new URL(value) : null;
  } catch {
    url = null;
  }
  if (!url || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
    throw new UsageError(`${flag} ${JSON.stringify(value.slice(0, 80)).replace(/[^\x20-\x7e]/g, '?')} is not an http(s) URL of a host and port`, { hint: 'e.g. http://127.0.0.1:11434 (the model server as the host itself sees it)' });
  }
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];

/** --host: like collect, but an empty name is refused (it used to vanish, and the run went to this machine). */
export const collectHosts = (value: string, previous: string[] = []): string[] => {
  const names = value.split(',').map((v) => v.trim());
  if (names.some((n) => !n)) throw new UsageError(`--host ${JSON.stringify(value.replace(/[^\x20-\x7e]/g, '?').slice(0, 80))}: an empty host name`, { hint: 'name a host ([user@]host[:port] or an ssh config alias); without --host, check reads this machine' });
  return [...previous, ...names];
};

export const positive = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive whole number, got "${shownPath(value)}"`);
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

/** The flags that pick hosts and how many are worked on at once (check and provision). */
export function addFleetOptions(command: Command, verb: string): Command {
  return command
    .option('--inventory <file>', 'an Ansible inventory (INI or YAML, with group_vars/ and host_vars/ beside it)')
    .option('-l, --limit <pattern>', 'hosts of the inventory to use, as Ansible\'s patterns: group, host, glob, a:b, a:&b, a:!b, ~regex')
    .option('--list-hosts', 'print the selected host names, one a line, and contact nothing')
    .addOption(new Option('-f, --forks <n>', `hosts ${verb} at once (default: 8 per core, 10 to 50)`).argParser(positive('--forks')))
    .addOption(new Option('--concurrency <n>', 'the same as --forks').argParser(positive('--concurrency')).hideHelp());
}

/** A file name as an error shows it: printable ASCII (anything else as ?), at most 200 characters. */
export const shownPath = (file: string): string => {
  const printable = file.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 200 ? `${printable.slice(0, 200)}... (${file.length} characters)` : printable;
};

/** Checks the key files exist before anything connects, and turns the flags into transport options. */
export function connectOptions(flags: SshFlags): ConnectOptions {
  if (flags.benchEndpoint !== undefined) checkEndpoint('--bench-endpoint', flags.benchEndpoint);
  if (flags.endpoint !== undefined) checkEndpoint('--endpoint', flags.endpoint);
  for (const file of flags.identity ?? []) {
    try {
      accessSync(file, constants.R_OK);
    } catch {
      throw new UsageError(`cannot read the key file ${shownPath(file)}`);
    }
  }
  if (flags.sshConfig !== undefined) {
    try {
      accessSync(flags.sshConfig, constants.R_OK);
    } catch {
      throw new UsageError(`cannot read the ssh config file ${shownPath(flags.sshConfig)}`, { hint: '-F /dev/null uses no ssh config at all' });
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
