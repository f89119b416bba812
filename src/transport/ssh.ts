import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { NodeSSH, type Config } from 'node-ssh';
import type { Duplex } from 'node:stream';
import { controllerWaitMs, deadlineSeconds, hitDeadline, killAfterSeconds, underDeadline } from '../core/deadline.js';
import { renderArgv } from '../core/quote.js';
import { Secret } from '../core/secret.js';
import type { Cmd, PortForward, RunOptions, RunResult, Transport } from '../core/types.js';
import {
  AuthError, ConfigError, HostKeyChangedError, HostKeyUnknownError, UnreachableError, type ZanuriError,
} from '../core/errors.js';
import {
  fingerprint, hostKeyAlgorithmsFor, judgeHostKey, keyType, knownHostsName, readKnownHosts, recordHostKey,
} from './known-hosts.js';
import { parseHostSpec, type HostSpec } from '../core/host-spec.js';
import { resolveEndpoint, type SshConfigOptions, type SshEndpoint } from './ssh-config.js';
import { ConnectionLostError, type HeldCommand, type HoldOptions, type Holding } from './session.js';

export interface SshConnectOptions extends SshConfigOptions {
  /** Record the key of a host not yet in known_hosts (OpenSSH's accept-new). Changed keys are always refused. */
  acceptNewHostKey?: boolean;
  /** A known_hosts file to read and record into instead of the ones ssh config names. */
  knownHostsFile?: string;
  /** Private key files to offer before the ones ssh config names. */
  identityFiles?: string[];
  connectTimeoutMs?: number;
  /** Keepalive interval instead of ssh config's ServerAliveInterval (or zanuri's default). */
  serverAliveIntervalMs?: number;
}

const defaultConnectTimeoutMs = 10_000;

/**
 * How often an established connection asks the host whether it is still there, when ssh config sets
 * no ServerAliveInterval. OpenSSH's default is never: a host whose sshd stops answering (stopped,
 * swapped to death, its packets dropped) would hold a run for as long as TCP retransmits, or forever.
 * With ServerAliveCountMax (default 3) unanswered, the host counts as gone: about a minute.
 */
export const defaultServerAliveIntervalMs = 15_000;

/**
 * What happened to a transport's connection after it was up, from any of its hops (a shared bastion
 * included): the first loss wins. `closing` says zanuri closed it itself.
 */
interface Loss {
  error: ConnectionLostError | null;
  closing: boolean;
}

/**
 * Records how a hop's connection went away, in words an operator can act on, in the Loss of each
 * transport using it (a live collection: a shared bastion gains and loses users).
 */
function watchLoss(
  ssh: NodeSSH, endpoint: SshEndpoint, via: string, losses: Iterable<Loss>, keepalive: { intervalMs: number; countMax: number }, onLost?: () => void,
): void {
  const connection = ssh.connection;
  if (!connection) return;
  const where = `${describe(endpoint)}${via}`;
  const lost = (reason: 'unresponsive' | 'closed', message: string, cause?: unknown): void => {
    onLost?.();
    for (const loss of losses) {
      if (loss.error) continue;
      loss.error = loss.closing
        ? new ConnectionLostError(where, 'aborted', `the connection to ${where} was closed by zanuri`)
        : new ConnectionLostError(where, reason, message, { cause });
    }
  };
  // Without a listener, an error after the handshake (a keepalive timeout, a reset) would be thrown
  // out of the event loop and end the whole run with a stack trace.
  connection.on('error', (error: Error & { level?: string; code?: string }) => {
    if (error.level === 'client-timeout') {
      lost('unresponsive', `${where} stopped answering: no reply to ${keepalive.countMax} SSH keepalives ${Math.round(keepalive.intervalMs / 1000)} s apart`, error);
    } else {
      lost('closed', `the connection to ${where} was lost: ${error.code ?? error.message}`, error);
    }
  });
  connection.on('close', () => lost('closed', `${where} closed the connection`));
}

/**
 * A connection to a jump hop, shared by the transports of this process whose jump chains start
 * the same way, so a fleet behind one bastion costs it one login (a `ufw limit`ed port refuses the
 * 6th new connection within 30 s). Only jump hops are shared: each target gets its own connection.
 */
interface Bastion {
  readonly key: string;
  /** Where it is found; it leaves when lost, failed or disposed, so no later open reuses it. */
  readonly home: Map<string, Bastion>;
  /** The connection, memoized as a promise so concurrent opens share one attempt. */
  readonly ssh: Promise<NodeSSH>;
  /** One per transport using it: their number is the reference count. */
  readonly losses: Set<Loss>;
  /** Hops reached through this one, so a new bastion never reuses hops behind a lost one. */
  readonly next: Map<string, Bastion>;
}

const bastions = new Map<string, Bastion>();

function retire(bastion: Bastion): void {
  if (bastion.home.get(bastion.key) === bastion) bastion.home.delete(bastion.key);
}

/** What makes two resolved hops one connection: all but the name it was asked by (and ProxyJump, which the chain already says). */
function hopKey(endpoint: SshEndpoint, options: SshConnectOptions): string {
  const { alias: _alias, proxyJump: _proxyJump, ...resolved } = endpoint;
  return JSON.stringify([resolved, options.acceptNewHostKey === true, options.knownHostsFile ?? null, options.identityFiles ?? [],
    options.connectTimeoutMs ?? null, options.serverAliveIntervalMs ?? null]);
}

/** Joins the bastion at `key` in `home` (connecting it with `connect` if there is none); release() leaves it. */
async function joinBastion(
  home: Map<string, Bastion>, key: string, loss: Loss, connect: (losses: Set<Loss>, onLost: () => void) => Promise<NodeSSH>,
): Promise<{ ssh: NodeSSH; next: Map<string, Bastion>; release: () => void }> {
  let bastion = home.get(key);
  if (!bastion) {
    const losses = new Set<Loss>();
    const created: Bastion = { key, home, ssh: connect(losses, () => retire(created)), losses, next: new Map() };
    created.ssh.catch(() => retire(created));
    home.set(key, created);
    bastion = created;
  }
  const b = bastion;
  b.losses.add(loss);
  const release = (): void => {
    b.losses.delete(loss);
    if (b.losses.size > 0) return;
    retire(b);
    b.ssh.then((ssh) => ssh.dispose(), () => undefined);
  };
  try {
    return { ssh: await b.ssh, next: b.next, release };
  } catch (error) {
    release();
    throw error;
  }
}

interface Hop {
  endpoint: SshEndpoint;
  ssh: NodeSSH;
  /** Disposes the connection, or leaves it when it is a shared bastion. */
  release(): void;
}

interface Channel {
  close(): void;
  end(): void;
  on(event: 'data' | 'close', listener: (chunk: Buffer) => void): void;
  on(event: 'exit', listener: (code: number | null) => void): void;
  stderr: { on(event: 'data', listener: (chunk: Buffer) => void): void };
}

function describe(endpoint: SshEndpoint): string {
  return `${endpoint.user}@${endpoint.host}${endpoint.port === 22 ? '' : `:${endpoint.port}`}`;
}

/** Reads the private keys ssh would offer; unreadable and passphrase-protected keys are skipped. */
async function loadKeys(files: readonly string[]): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  for (const file of files) {
    const key = await readFile(file).catch(() => null);
    if (key && !/ENCRYPTED|Proc-Type: 4,ENCRYPTED/.test(key.toString('latin1', 0, 200))) keys.push(key);
  }
  return keys;
}

/** Maps ssh2's errors to zanuri's, keeping the original as the cause. */
function classify(error: unknown, endpoint: SshEndpoint, via: string): ZanuriError {
  const err = error as { code?: string; level?: string; message?: string };
  const where = `${describe(endpoint)}${via}`;
  if (err.level === 'client-authentication' || /authentication methods failed/i.test(err.message ?? '')) {
    return new AuthError(`authentication to ${where} failed: no offered key or agent identity was accepted`, {
      hint: 'check the user name, IdentityFile and that the public key is in ~/.ssh/authorized_keys on the host', cause: error,
    });
  }
  const reason = err.code ?? err.message ?? String(error);
  const refused = err.code === 'ECONNREFUSED'
    ? '; a host whose public SSH port is rate-limited (ufw limit, zanuri\'s default) refuses a 6th new connection from one address within 30 s: wait that long and run again'
    : '';
  return new UnreachableError(`cannot reach ${where}: ${reason}`, {
    hint: `check the address, port, that sshd is running and that no firewall drops the connection${refused}`, cause: error,
  });
}

/** One SSH connection (through any ProxyJump hops) with host keys verified against known_hosts. */
export class SshTransport implements Transport, Holding {
  readonly target: string;
  readonly endpoint: SshEndpoint;
  readonly sshPort: number;
  readonly #hops: Hop[];
  readonly #forwards: Server[] = [];
  /** How this connection was asked for, so connectAs resolves ssh config exactly as `ssh user@alias` would. */
  readonly #spec: HostSpec;
  readonly #options: SshConnectOptions;
  readonly #loss: Loss;
  #roundTrips = 0;

  private constructor(hops: Hop[], spec: HostSpec, options: SshConnectOptions, loss: Loss) {
    const last = hops.at(-1);
    if (!last) throw new Error('an SSH transport needs at least one hop');
    this.#hops = hops;
    this.#spec = spec;
    this.#options = options;
    this.#loss = loss;
    this.endpoint = last.endpoint;
    this.sshPort = last.endpoint.port;
    this.target = describe(last.endpoint);
  }

  get roundTrips(): number {
    return this.#roundTrips;
  }

  /** Connects to `spec` ("[user@]host[:port]" or an ssh config alias). */
  static async connect(spec: string, options: SshConnectOptions = {}): Promise<SshTransport> {
    const parsed = parseHostSpec(spec);
    if (!parsed) throw new ConfigError(`"${spec}" is not a host: expected [user@]host[:port]`);
    return SshTransport.open(parsed, spec, options);
  }

  /** The same host (alias, port, ProxyJump) and options, logged in as `user`. */
  async connectAs(user: string): Promise<SshTransport> {
    return SshTransport.open({ ...this.#spec, user }, `${user}@${this.#spec.alias}`, this.#options);
  }

  private static async open(parsed: HostSpec, spec: string, options: SshConnectOptions): Promise<SshTransport> {
    const endpoint = await resolveEndpoint(parsed, options);
    const jumpSpecs = endpoint.proxyJump;
    const chain: SshEndpoint[] = [];
    for (const jump of jumpSpecs) {
      const jumpSpec = parseHostSpec(jump);
      if (!jumpSpec) throw new ConfigError(`ProxyJump "${jump}" for ${spec} is not a host: expected [user@]host[:port]`);
      chain.push(await resolveEndpoint(jumpSpec, options));
    }
    chain.push(endpoint);
    for (const hop of chain) {
      if (hop.proxyCommand) {
        throw new ConfigError(`ssh config gives ${hop.alias} a ProxyCommand, which zanuri does not run`, { hint: 'use ProxyJump for bastion hosts' });
      }
    }
    const hops: Hop[] = [];
    const loss: Loss = { error: null, closing: false };
    const viaFor = (index: number): string => (index > 0 ? ` via ${chain.slice(0, index).map(describe).join(' -> ')}` : '');
    try {
      let home = bastions;
      for (const [index, hop] of chain.slice(0, -1).entries()) {
        const via = viaFor(index);
        const previous = hops.at(-1)?.ssh;
        const bastion = await joinBastion(home, hopKey(hop, options), loss, async (losses, onLost) => {
          const sock = previous ? await forward(previous, hop, viaFor(index - 1)) : undefined;
          return connectHop(hop, sock, options, via, losses, onLost);
        });
        hops.push({ endpoint: hop, ssh: bastion.ssh, release: bastion.release });
        home = bastion.next;
      }
      const previous = hops.at(-1)?.ssh;
      const sock = previous ? await forward(previous, endpoint, viaFor(hops.length - 1)) : undefined;
      const ssh = await connectHop(endpoint, sock, options, viaFor(hops.length), [loss]);
      hops.push({ endpoint, ssh, release: () => ssh.dispose() });
    } catch (error) {
      for (const hop of hops.reverse()) hop.release();
      throw error;
    }
    return new SshTransport(hops, parsed, options, loss);
  }

  /** Why the connection is gone, or null while it is up. */
  get lost(): ConnectionLostError | null {
    return this.#loss.error;
  }

  /**
   * Runs a command; with a timeout it runs under `timeout` on the host (core/deadline.ts), so the
   * command and its children are gone when the deadline passes, whatever happens to the channel.
   * The controller waits a little longer than that, then closes the channel itself.
   */
  async run(cmd: Cmd, options?: RunOptions): Promise<RunResult> {
    const last = this.#hops.at(-1);
    if (this.#loss.error) throw this.#loss.error;
    if (!last) throw new ConnectionLostError(this.target, 'aborted', `the connection to ${this.target} was closed by zanuri`);
    this.#roundTrips += 1;
    const argv: [string, ...string[]] = cmd.env ? ['env', ...Object.entries(cmd.env).map(([k, v]) => `${k}=${v}`), ...cmd.argv] : [...cmd.argv];
    const timeoutMs = options?.timeoutMs;
    const shown = renderArgv(argv);
    const command = timeoutMs ? renderArgv(underDeadline(argv, timeoutMs)) : shown;
    const started = performance.now();
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let channel: { close(): void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    const execution = last.ssh.execCommand(command, {
      noTrim: true,
      stdin: cmd.stdin instanceof Secret ? cmd.stdin.reveal() : cmd.stdin,
      onChannel: (c) => { channel = c; },
      onStdout: (chunk) => stdout.push(chunk),
      onStderr: (chunk) => stderr.push(chunk),
    });
    const timeout = timeoutMs
      ? new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), controllerWaitMs(timeoutMs)); })
      : null;
    try {
      const outcome = await (timeout ? Promise.race([execution, timeout]) : execution);
      const durationMs = Math.round(performance.now() - started);
      const abandoned = outcome === 'timeout';
      if (abandoned) channel?.close();
      // A channel that ended without an exit status because the connection went: the command's fate is unknown.
      if (this.#loss.error && (abandoned || outcome.code === null)) throw this.#loss.error;
      const timedOut = abandoned || (timeoutMs !== undefined && hitDeadline(outcome.code, durationMs, timeoutMs));
      const exitCode = timedOut ? null : outcome.code;
      const err = Buffer.concat(stderr).toString('utf8');
      const why = abandoned
        ? `timed out after ${deadlineSeconds(timeoutMs ?? 0)} s and the host did not answer ${killAfterSeconds + 5} s later; its own deadline ends the command there`
        : `timed out after ${deadlineSeconds(timeoutMs ?? 0)} s: the command was killed on the host`;
      return {
        command: shown,
        target: this.target,
        exitCode,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: timedOut ? `${err}${err && !err.endsWith('\n') ? '\n' : ''}${why}` : err,
        durationMs,
        ok: exitCode === 0,
      };
    } catch (error) {
      if (this.#loss.error) throw this.#loss.error;
      if (error instanceof ConnectionLostError) throw error;
      throw classify(error, this.endpoint, '');
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Starts a command whose stdin stays open until release() or the end of the connection (OpenSSH
   * closes the session's pipes when the connection dies, so the command reads EOF then). Used for the
   * host lock: a holder that reads stdin to its end never outlives the run that took it.
   */
  hold(cmd: Cmd, options: HoldOptions): HeldCommand {
    const connection = this.#hops.at(-1)?.ssh.connection;
    const shown = renderArgv(cmd.argv);
    const result = (stdout: string, stderr: string, exitCode: number | null, started: number): RunResult => ({
      command: shown, target: this.target, exitCode, stdout, stderr, durationMs: Math.round(performance.now() - started), ok: exitCode === 0,
    });
    let channel: Channel | null = null;
    let released = false;
    const started = new Promise<RunResult>((resolve, reject) => {
      const t0 = performance.now();
      if (this.#loss.error) return reject(this.#loss.error);
      if (!connection) return reject(new ConnectionLostError(this.target, 'aborted', `the connection to ${this.target} was closed by zanuri`));
      this.#roundTrips += 1;
      let out = '';
      let err = '';
      let code: number | null = null;
      let settled = false;
      const settle = (r: RunResult | Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      const timer = setTimeout(() => {
        channel?.close();
        settle(result(out, `${err}${err && !err.endsWith('\n') ? '\n' : ''}no answer within ${deadlineSeconds(options.timeoutMs)} s`, null, t0));
      }, options.timeoutMs);
      connection.exec(renderArgv(cmd.argv), (error: Error | undefined, stream: Channel) => {
        if (error) return settle(this.#loss.error ?? classify(error, this.endpoint, ''));
        channel = stream;
        if (released) stream.end();
        let partial = '';
        stream.on('data', (chunk: Buffer) => {
          const text = chunk.toString('utf8');
          out += text;
          partial += text;
          let nl: number;
          while ((nl = partial.indexOf('\n')) >= 0) {
            const line = partial.slice(0, nl);
            partial = partial.slice(nl + 1);
            options.onLine?.(line);
            if (line.startsWith(options.until)) settle(result(out, err, null, t0));
          }
        });
        stream.stderr.on('data', (chunk: Buffer) => { err += chunk.toString('utf8'); });
        stream.on('exit', (c: number | null) => { code = c; });
        stream.on('close', () => settle(code === null && this.#loss.error ? this.#loss.error : result(out, err, code, t0)));
      });
    });
    return {
      started,
      release: () => {
        released = true;
        channel?.end();
      },
    };
  }

  /**
   * A local port on 127.0.0.1 whose connections are carried through this SSH connection to
   * host:port as seen from the remote machine (ssh -L): internal endpoints stay internal.
   * An arrow property, not a method, so the capability keeps its `this` when passed around.
   */
  readonly forwardLocal = async (host: string, port: number): Promise<PortForward> => {
    const connection = this.#hops.at(-1)?.ssh.connection;
    if (!connection) throw new UnreachableError(`the connection to ${this.target} is closed`);
    const server = createServer((socket) => {
      connection.forwardOut('127.0.0.1', 0, host, port, (error: Error | undefined, stream: Duplex) => {
        if (error) {
          socket.destroy();
          return;
        }
        socket.pipe(stream).pipe(socket);
        stream.on('close', () => socket.destroy());
        socket.on('close', () => stream.destroy());
        socket.on('error', () => stream.destroy());
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    const local = typeof address === 'object' && address ? address.port : 0;
    this.#forwards.push(server);
    return { port: local, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  };

  async close(): Promise<void> {
    this.#loss.closing = true;
    for (const server of this.#forwards.splice(0)) server.close();
    for (const hop of [...this.#hops].reverse()) hop.release();
    this.#hops.length = 0;
  }
}

async function forward(ssh: NodeSSH, next: SshEndpoint, via: string): Promise<Duplex> {
  const connection = ssh.connection;
  if (!connection) throw new UnreachableError(`the bastion${via} closed before forwarding to ${describe(next)}`);
  return new Promise<Duplex>((resolve, reject) => {
    connection.forwardOut('127.0.0.1', 0, next.host, next.port, (error: Error | undefined, stream: Duplex) => {
      if (error) reject(new UnreachableError(`cannot reach ${describe(next)} through the bastion: ${error.message}`, { cause: error }));
      else resolve(stream);
    });
  });
}

async function connectHop(
  endpoint: SshEndpoint, sock: Duplex | undefined, options: SshConnectOptions, via: string, losses: Iterable<Loss>, onLost?: () => void,
): Promise<NodeSSH> {
  const name = knownHostsName(endpoint.host, endpoint.port);
  const userFiles = options.knownHostsFile ? [options.knownHostsFile] : endpoint.knownHostsFiles;
  const known = await readKnownHosts(options.knownHostsFile ? userFiles : [...userFiles, ...endpoint.globalKnownHostsFiles], name);
  const acceptNew = options.acceptNewHostKey === true || endpoint.strictHostKeyChecking === 'accept-new' || endpoint.strictHostKeyChecking === 'no';
  let refusal: ZanuriError | null = null;
  let toRecord: Buffer | null = null;

  const hostVerifier = (presented: Buffer): boolean => {
    const verdict = judgeHostKey(known, presented);
    const shown = `${keyType(presented)} ${fingerprint(presented)}`;
    if (verdict.kind === 'match') return true;
    if (verdict.kind === 'changed' || verdict.kind === 'revoked') {
      const was = `${verdict.known.type} ${fingerprint(verdict.known.blob)} (${verdict.known.file}:${verdict.known.line})`;
      refusal = new HostKeyChangedError(
        verdict.kind === 'revoked'
          ? `the host key of ${name} is revoked: ${shown}`
          : `the host key of ${name} has changed: it presented ${shown} but known_hosts has ${was}. Someone could be intercepting the connection`,
        { hint: `if the host was reinstalled, verify the new key out of band and remove the old line (ssh-keygen -R '${name}')` },
      );
      return false;
    }
    if (acceptNew) {
      toRecord = presented;
      return true;
    }
    const others = verdict.otherTypes.length ? ` (known_hosts has only ${verdict.otherTypes.join(', ')} keys for it)` : '';
    refusal = new HostKeyUnknownError(`the host key of ${name} is not in known_hosts: it presented ${shown}${others}`, {
      hint: 'verify the fingerprint, then run again with --accept-new-host-key to record it',
    });
    return false;
  };

  const identityFiles = [...(options.identityFiles ?? []), ...endpoint.identityFiles];
  const keys = await loadKeys(identityFiles);
  const agent = endpoint.identitiesOnly && identityFiles.length ? null : endpoint.identityAgent;
  const methods: unknown[] = [
    ...(agent ? [{ type: 'agent', username: endpoint.user, agent }] : []),
    ...keys.map((key) => ({ type: 'publickey', username: endpoint.user, key })),
  ];
  const knownTypes = [...new Set(known.filter((k) => !k.revoked).map((k) => k.type))];
  const ssh = new NodeSSH();
  const keepalive = { intervalMs: options.serverAliveIntervalMs ?? endpoint.serverAliveIntervalMs ?? defaultServerAliveIntervalMs, countMax: endpoint.serverAliveCountMax };
  const config: Config & Record<string, unknown> = {
    username: endpoint.user,
    ...(sock ? { sock } : { host: endpoint.host, port: endpoint.port }),
    readyTimeout: options.connectTimeoutMs ?? endpoint.connectTimeoutMs ?? defaultConnectTimeoutMs,
    hostVerifier,
    // ssh2 sends a keepalive after each quiet interval and gives up after countMax unanswered (OpenSSH's ServerAlive*).
    keepaliveInterval: keepalive.intervalMs,
    keepaliveCountMax: keepalive.countMax,
    // Ask the server for a key type we already know, as OpenSSH orders HostKeyAlgorithms.
    ...(knownTypes.length ? { algorithms: { serverHostKey: { prepend: hostKeyAlgorithmsFor(knownTypes) } } } : {}),
    authHandler: (methodsLeft: unknown, partial: unknown, next: (m: unknown) => void) => { next(methods.shift() ?? false); },
  };
  if (!methods.length) {
    throw new AuthError(`no SSH key for ${describe(endpoint)}${via}: none of ${identityFiles.join(', ') || 'the default identity files'} is readable and no agent is running`, {
      hint: 'pass --identity FILE, set IdentityFile in ~/.ssh/config, or start ssh-agent',
    });
  }
  try {
    await ssh.connect(config);
  } catch (error) {
    ssh.dispose();
    throw refusal ?? classify(error, endpoint, via);
  }
  watchLoss(ssh, endpoint, via, losses, keepalive, onLost);
  if (toRecord) await recordHostKey(userFiles[0] ?? `${process.env['HOME']}/.ssh/known_hosts`, name, toRecord);
  return ssh;
}
