/**
 * The compose step's operator input through the real CLI: a Compose file and its secrets read with
 * --set ...=@FILE are refused with exit 2 before any connection when they are bad, without their
 * content in the message; a good pair passes the parameters and fails only at the (unreachable) host.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-compose-cli-'));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
// Port 1 on loopback refuses at once: a run that got as far as connecting exits 4, not 2.
const unreachable = ['--host', 'root@127.0.0.1:1', '-i', join(dir, 'id'), '--yes', '--playbook', 'test/integration/playbooks/compose.yaml'];

function zanuri(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [bin, 'provision', ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}
const write = (name: string, text: string): string => {
  writeFileSync(join(dir, name), text, { mode: 0o600 });
  return join(dir, name);
};

describe('compose input on the command line', () => {
  const json = write('compose.json', JSON.stringify({ services: { web: { image: 'zanuri/busybox', ports: ['8000:80'] } } }, null, 2));

  it('refuses secrets that are not KEY=VALUE lines with exit 2, naming the line, never its content', async () => {
    const env = write('bad.env', 'GOOD=1\nthis is not-a-pair hunter2-secret\n');
    const run = await zanuri(...unreachable, '--set', `compose.file=@${json}`, '--set', `compose.env=@${env}`);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/compose: env line 2 .*content is not shown/);
    expect(run.stdout + run.stderr).not.toContain('hunter2');
  });

  it('reads a YAML file given with @FILE whole (its indentation kept): the parameters pass and only the unreachable host fails (exit 4), never showing the content', async () => {
    const yaml = write('compose.yaml', 'services:\n  web:\n    image: private.registry/secret-image\n');
    const run = await zanuri(...unreachable, '--set', `compose.file=@${yaml}`);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stdout + run.stderr).not.toContain('secret-image');
  });

  it('refuses a hostile project name with exit 2', async () => {
    const run = await zanuri(...unreachable, '--set', `compose.file=@${json}`, '--set', 'compose.project=x;reboot');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/compose: project must be a project name/);
  });

  it('takes a JSON file, good secrets and opened ports, and only then tries the host', async () => {
    const env = write('good.env', '# secrets\nDB_PASSWORD=hunter2\n');
    const run = await zanuri(...unreachable, '--set', `compose.file=@${json}`, '--set', `compose.env=@${env}`, '--set', 'compose.open=[{"port":8000,"access":"public"}]');
    expect(run.code, run.stderr).toBe(4);
    expect(run.stdout + run.stderr).not.toContain('hunter2');
  });
});
