import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { userFact } from '../../../src/facts/state.js';
import { user } from '../../../src/resources/user.js';
import { factsOf } from '../steps/facts-of.js';

const passwd = (shell: string, groups = 'deploy'): string => `deploy:x:1001:1001::/home/deploy:${shell}\n${groups}\n`;
const planFor = (output: string, shell = '/usr/sbin/nologin', groups = ['sudo']) =>
  user('deploy', { shell, groups }).plan(factsOf([[userFact('deploy'), output]]));

describe('the user resource', () => {
  it('changes a shell with the undo that puts the old one back (a rolled-back deploy-user.shell leaves no bad shell)', () => {
    expect(planFor(passwd('/bin/bash', 'deploy sudo'))).toEqual([{
      kind: 'run', cmd: { argv: ['usermod', '--shell', '/usr/sbin/nologin', '--', 'deploy'] },
      undo: { argv: ['usermod', '--shell', '/bin/bash', '--', 'deploy'] },
      why: "deploy's shell is /bin/bash, not /usr/sbin/nologin",
    }]);
  });

  it('adds missing groups with the undo that takes exactly those away again', () => {
    const [add] = planFor(passwd('/usr/sbin/nologin', 'deploy adm'), '/usr/sbin/nologin', ['sudo', 'adm', 'docker']);
    expect(add).toMatchObject({ kind: 'run', cmd: { argv: ['usermod', '--append', '--groups', 'sudo,docker', '--', 'deploy'] } });
    expect((add as unknown as { undo: { argv: string[] } }).undo.argv.slice(3)).toEqual(['zanuri-groups', 'deploy', 'sudo', 'docker']);
  });

  it('creates a missing user with the undo that removes it and the home it was given', () => {
    const [create] = planFor('');
    expect(create).toMatchObject({ kind: 'run', cmd: { argv: ['useradd', '--create-home', '--shell', '/usr/sbin/nologin', '--groups', 'sudo', '--', 'deploy'] }, why: 'user deploy does not exist' });
    expect((create as unknown as { undo: { argv: string[] } }).undo.argv).toEqual(['sh', '-c', expect.stringContaining('userdel --remove'), 'zanuri-userdel', 'deploy']);
  });

  it('plans nothing for a user as declared', () => {
    expect(planFor(passwd('/usr/sbin/nologin', 'deploy sudo'))).toEqual([]);
  });

  it('passes hostile names to its undo scripts as data, never as code, in dash and bash', () => {
    const marker = `/tmp/zanuri-pwned-${process.pid}`;
    const hostile = `x'; touch ${marker}; '$(touch ${marker})\`touch ${marker}\``;
    const [add] = planFor(passwd('/bin/bash', 'deploy'), '/bin/bash', [hostile]);
    const [, , script, ...args] = (add as unknown as { undo: { argv: string[] } }).undo.argv;
    for (const sh of ['dash', 'bash']) {
      // gpasswd stands in as a function that prints what it was given (to stderr: the script silences its stdout).
      const r = spawnSync(sh, ['-c', `gpasswd() { printf '[%s]' "$@" >&2; }; ${script}`, ...args], { encoding: 'utf8' });
      expect(r.status, sh).toBe(0);
      expect(r.stderr, sh).toBe(`[--delete][deploy][${hostile}]`);
      expect(existsSync(marker), sh).toBe(false);
    }
  });
});
