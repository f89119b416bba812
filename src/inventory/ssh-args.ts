/**
 * ansible_ssh_common_args and ansible_ssh_extra_args: command-line options Ansible appends to its
 * `ssh` command. zanuri speaks SSH itself (no ssh binary runs), so it honours the options it knows
 * how to apply and refuses every other one, naming the inventory file and the host, before any
 * connection. A refused option is never dropped silently: the run would reach the host another way
 * than the operator wrote (ProxyCommand: directly). StrictHostKeyChecking=no is refused too: host keys
 * are always verified, against known_hosts, with accept-new the only relaxation.
 *
 * Honoured: -p PORT, -l USER, -i FILE and the -o options Port, User, IdentityFile, ConnectTimeout,
 * ServerAliveInterval, UserKnownHostsFile, StrictHostKeyChecking=yes|accept-new. Accepted with no
 * effect, because zanuri already behaves so: BatchMode=yes, PasswordAuthentication=no,
 * KbdInteractiveAuthentication=no, PubkeyAuthentication=yes, ControlMaster, ControlPersist,
 * ControlPath (one connection per host and run; nothing to share), -C, -q, -T.
 *
 * As with ssh, the first value of an option wins; Ansible puts ansible_port, ansible_user and
 * ansible_ssh_private_key_file before these arguments, so those variables win over them.
 */
import { homedir } from 'node:os';
import { ConfigError } from '../core/errors.js';
import { shellWords } from './ini.js';

export interface SshArgs {
  port: string | null;
  user: string | null;
  /** In order; offered after ansible_ssh_private_key_file. */
  identityFiles: string[];
  connectTimeoutMs: number | null;
  serverAliveIntervalMs: number | null;
  knownHostsFile: string | null;
  /** StrictHostKeyChecking=accept-new: record a new host's key (a changed key is still refused). */
  acceptNewHostKey: boolean;
}

export const noSshArgs: SshArgs = { port: null, user: null, identityFiles: [], connectTimeoutMs: null, serverAliveIntervalMs: null, knownHostsFile: null, acceptNewHostKey: false };

/** Options with no effect in zanuri, and the values that keep them so. null: any value. */
const noEffect: Record<string, readonly string[] | null> = {
  batchmode: ['yes'],
  passwordauthentication: ['no'],
  kbdinteractiveauthentication: ['no'],
  challengeresponseauthentication: ['no'],
  pubkeyauthentication: ['yes'],
  controlmaster: null,
  controlpersist: null,
  controlpath: null,
};

const why: Record<string, string> = {
  proxycommand: 'zanuri runs no local command to reach a host; put a ProxyJump for the host in your ssh config, which zanuri follows',
  proxyjump: 'put ProxyJump for the host in your ssh config (zanuri follows it there)',
  localcommand: 'zanuri runs no local command',
  permitlocalcommand: 'zanuri runs no local command',
  knownhostscommand: 'zanuri runs no local command',
  stricthostkeychecking: 'zanuri always checks host keys: yes, or accept-new to record a host not yet known (a changed key is always refused)',
  userknownhostsfile: 'one known_hosts file, a path',
};

const printable = (s: string): string => JSON.stringify(s.slice(0, 80)).replace(/[^\x20-\x7e]/g, '?');

/**
 * Reads one variable's value (what Ansible passes through shlex.split) into `into`; the first
 * value of each option stays, as with ssh.
 */
export function parseSshArgs(value: unknown, variable: string, host: string, file: string, into: SshArgs = { ...noSshArgs, identityFiles: [] }): SshArgs {
  if (value === undefined || value === null || value === '') return into;
  const refuse = (what: string, hint: string): never => {
    throw new ConfigError(`host ${host}: ${variable} has ${what}, which zanuri does not honour`, { location: file, hint });
  };
  if (typeof value !== 'string') throw new ConfigError(`host ${host}: ${variable} must be a string of ssh options, got ${printable(JSON.stringify(value))}`, { location: file });
  if (value.includes('{{') || value.includes('{%')) {
    throw new ConfigError(`host ${host}: ${variable} is a Jinja template, which zanuri does not evaluate`, { location: file, hint: 'write the options themselves' });
  }
  const words = shellWords(value, file, false);
  const out = into;
  const setOption = (keyRaw: string, val: string): void => {
    const key = keyRaw.toLowerCase();
    const bad = (hint: string): never => refuse(`-o ${keyRaw}=${printable(val).slice(1, -1)}`, hint);
    if (key in noEffect) {
      const allowed = noEffect[key];
      if (allowed && !allowed.includes(val.toLowerCase())) bad(`zanuri always connects with ${keyRaw}=${allowed[0]}`);
      return;
    }
    switch (key) {
      case 'port':
        if (!/^\d{1,5}$/.test(val) || Number(val) < 1 || Number(val) > 65535) bad('a port number from 1 to 65535');
        out.port ??= val;
        return;
      case 'user':
        if (!/^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/.test(val)) bad('a user name');
        out.user ??= val;
        return;
      case 'identityfile':
        if (!val || /[%$]/.test(val.replace(/^~(?=\/)/, ''))) bad('a key file path without % or $ tokens');
        out.identityFiles.push(val.replace(/^~(?=\/|$)/, homedir()));
        return;
      case 'connecttimeout':
      case 'serveraliveinterval': {
        if (!/^\d{1,5}$/.test(val) || Number(val) < 1) bad('a whole number of seconds');
        if (key === 'connecttimeout') out.connectTimeoutMs ??= Number(val) * 1000;
        else out.serverAliveIntervalMs ??= Number(val) * 1000;
        return;
      }
      case 'userknownhostsfile':
        if (!val || /\s|[%$]/.test(val) || val === 'none') bad(why[key] as string);
        out.knownHostsFile ??= val.replace(/^~(?=\/|$)/, homedir());
        return;
      case 'stricthostkeychecking': {
        const v = val.toLowerCase();
        if (v === 'accept-new') out.acceptNewHostKey = true;
        else if (v !== 'yes') bad(why[key] as string);
        return;
      }
      default:
        bad(why[key] ?? 'zanuri honours -p, -l, -i and the -o options Port, User, IdentityFile, ConnectTimeout, ServerAliveInterval, UserKnownHostsFile, StrictHostKeyChecking=yes|accept-new (BatchMode=yes and the Control* options have no effect)');
    }
  };
  for (let i = 0; i < words.length; i += 1) {
    const word = words[i] as string;
    const next = (): string => {
      const v = words[i + 1];
      if (v === undefined) refuse(`${word} without a value`, `e.g. ${word} VALUE`);
      i += 1;
      return v as string;
    };
    const flag = word.match(/^-([a-zA-Z])(.*)$/);
    if (!flag) refuse(`${printable(word)}`, 'ssh options only: -o Key=Value, -p PORT, -l USER, -i FILE');
    const [, letter, rest] = flag as RegExpMatchArray;
    const arg = (): string => (rest ? rest : next());
    switch (letter) {
      case 'o': {
        const option = arg();
        const m = option.match(/^\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$/s);
        if (!m) refuse(`-o ${printable(option)}`, 'an option is Key=Value');
        setOption((m as RegExpMatchArray)[1] as string, ((m as RegExpMatchArray)[2] as string).trim());
        break;
      }
      case 'p': setOption('Port', arg()); break;
      case 'l': setOption('User', arg()); break;
      case 'i': setOption('IdentityFile', arg()); break;
      case 'C': case 'q': case 'T':
        if (rest && !/^[CqT]+$/.test(rest)) refuse(printable(word), 'ssh options only: -o Key=Value, -p PORT, -l USER, -i FILE');
        break;
      default:
        refuse(`-${letter}`, letter === 'J' ? why['proxyjump'] as string
          : 'zanuri honours -p, -l, -i, -o Key=Value (Port, User, IdentityFile, ConnectTimeout, ServerAliveInterval, UserKnownHostsFile, StrictHostKeyChecking) and ignores -C, -q, -T');
    }
  }
  return out;
}
