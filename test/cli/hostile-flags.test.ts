/**
 * Every flag that takes a value, of check, provision, audit, bench and cloud-init (read from each
 * command's own --help, so a new flag is covered without a line here), given hostile values as an
 * attacker would: quotes, $(), backticks, ;, &&, a newline, an option-like -oProxyCommand=..., and
 * for a sample 100 kB, look-alike letters and .. paths. Each run either stops with exit 2 before any
 * connection (the --host is a local listener that records every connection) or is a value the flag
 * takes as data; never an internal error or a stack trace, never a raw escape sequence on the
 * terminal, and a marker file proves that no injected command ran on this machine.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-hostile-flags-'));
const markers = join(dir, 'markers');
execFileSync('mkdir', [markers]);
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator@example', '-f', join(dir, 'id')]);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run { code: number; stdout: string; stderr: string }

function zanuri(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { cwd: dir, env: { ...process.env, NO_COLOR: '1', HOME: dir }, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

/** A TCP listener standing in for a host: it records each connection and closes it (so a run that got that far exits 4). */
async function recorder(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server: Server = createServer((socket) => {
    count += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { port, connections: () => count, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const touch = (name: string): string => `touch ${markers}/${name}`;
/** One value that is quotes, $(), backticks, ;, &&, a newline and an option (-oProxyCommand=...) at once. */
const shellish = `-oProxyCommand=${touch('option')} x'; ${touch('quote')}; echo "$(${touch('subst')})" \`${touch('backtick')}\` && ${touch('and')}\nnext`;
const sample = ['x'.repeat(100_000), 'ｒｏｏｔ＠ｅｘａｍｐｌｅ', '../../../../etc/shadow', `\x1b]0;owned\x07\x1b[2J${touch('escape')}`];

const commands = ['check', 'provision', 'audit', 'bench', 'cloud-init'] as const;
type Command = (typeof commands)[number];

/** The flags of a command that take a value, as its --help lists them. */
function valueFlags(command: Command): string[] {
  const help = execFileSync('node', [bin, command, '--help']).toString();
  return [...help.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*) </gm)].map((m) => m[1] as string);
}

/** Arguments that make a run reach its host (or, for cloud-init, write its user-data): the hostile flag replaces its own. */
function baseArgs(command: Command, port: number): string[] {
  const host = ['--host', `root@127.0.0.1:${port}`, '-F', '/dev/null', '-i', join(dir, 'id'), '--connect-timeout', '5'];
  switch (command) {
    case 'check': return host;
    case 'audit': return host;
    case 'bench': return [...host, '--requests', '1', '--warmup', '0', '--concurrency', '1'];
    case 'provision': return [...host, '--playbook', 'base', '--yes', '--set', `deploy-user.authorizedKeys=${JSON.stringify([execFileSync('cat', [join(dir, 'id.pub')]).toString().trim()])}`];
    case 'cloud-init': return ['--profile', 'zanuri-dev', '--ssh-key', join(dir, 'id.pub'), '--node-url', 'https://mirror.example/node-v20.19.5-linux-x64.tar.xz', '--node-sha256', 'a'.repeat(64)];
  }
}

/** Replaces (or adds) flag's value in args. */
function withFlag(args: readonly string[], flag: string, value: string): string[] {
  const short: Record<string, string> = { '--ssh-config': '-F', '--identity': '-i' };
  const out: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === flag || args[i] === short[flag]) { i += 1; continue; }
    out.push(args[i] as string);
  }
  return [...out, flag, value];
}

/** Runs fn over items, `limit` at a time. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  }));
  return results;
}

interface Case { command: Command; flag: string; value: string }
interface Outcome extends Case { run: Run; connections: number }

describe('hostile values for every flag of check, provision, audit, bench and cloud-init', () => {
  it('stops each with exit 2 before any connection, or takes it as data; no internal error, no escape sequence, no command run here', async () => {
    const cases: Case[] = commands.flatMap((command) => {
      const flags = valueFlags(command);
      expect(flags.length, command).toBeGreaterThan(3);
      return flags.flatMap((flag, i) => [
        { command, flag, value: shellish },
        // A sample: one flag in five of each command also gets one of the long, look-alike, .. and escape values.
        ...(i % 5 === 0 ? [{ command, flag, value: sample[(commands.indexOf(command) + i / 5) % sample.length] as string }] : []),
      ]);
    });
    const outcomes = await pool(cases, 4, async (c): Promise<Outcome> => {
      const listener = await recorder();
      try {
        const run = await zanuri([c.command, ...withFlag(baseArgs(c.command, listener.port), c.flag, c.value)]);
        return { ...c, run, connections: listener.connections() };
      } finally {
        await listener.close();
      }
    });
    const takenAsData: string[] = [];
    const problems: string[] = [];
    for (const o of outcomes) {
      const where = `${o.command} ${o.flag}=${JSON.stringify(o.value).slice(0, 40)}: exit ${o.run.code}: ${o.run.stderr.slice(0, 300)}`;
      const output = o.run.stderr + (o.command === 'cloud-init' ? '' : o.run.stdout);
      if (o.run.code === 1 || o.run.code === -1 || /internal error|\n\s+at .*\.js:\d+/.test(o.run.stderr)) problems.push(`internal error or crash: ${where}`);
      if (/\x1b\]|\x07|\x1b\[2J/.test(output)) problems.push(`an escape sequence reached the terminal: ${where}`);
      if (output.length > 20_000) problems.push(`${output.length} characters of output (the value echoed whole): ${where.slice(0, 200)}`);
      if (o.run.code === 2 && o.connections) problems.push(`refused, yet a connection was made: ${where}`);
      if (o.run.code !== 2) takenAsData.push(`${o.command} ${o.flag}`);
    }
    expect(problems).toEqual([]);
    // The flags that take any text as data (a model's name, a file to write): named here, so a new one is looked at.
    expect([...new Set(takenAsData)].sort()).toEqual([...expectedData].sort());
    expect(readdirSync(markers), 'an injected command ran on this machine').toEqual([]);
  }, 900_000);
});

/** Values these flags take as data, not as anything a shell or ssh reads: the run goes on to its host (exit 4 at the listener). */
const expectedData: string[] = [
  'audit --known-hosts', 'bench --known-hosts', 'check --known-hosts', 'provision --known-hosts', // a file that ssh reads and writes, never a shell
  'bench --model', // sent as a JSON string in the request body
  'bench --report', // a file written after the run
];

