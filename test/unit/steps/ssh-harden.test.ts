import { describe, expect, it } from 'vitest';
import { fileFact, serviceFact } from '../../../src/facts/state.js';
import { dropInPath, sshHarden } from '../../../src/steps/ssh-harden.js';
import { planOf, present } from './facts-of.js';

const params = sshHarden.parseParams({});
const services = (socket: string): Array<[ReturnType<typeof serviceFact>, string]> => [
  [serviceFact('ssh.service'), 'enabled\nactive'], [serviceFact('ssh.socket'), `disabled\n${socket}`],
];
const hardened = [
  '# Managed by zanuri (ssh-harden); edits here are overwritten.', 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
  'KbdInteractiveAuthentication no', 'PubkeyAuthentication yes', 'MaxAuthTries 3', 'X11Forwarding no', '',
].join('\n');

describe('ssh-harden', () => {
  it('writes a drop-in that sorts before cloud-init\'s and validates it with sshd -t before reloading', () => {
    const plan = planOf(sshHarden, [[fileFact(dropInPath), 'absent'], ...services('inactive')], params);
    expect(plan.actions).toEqual([expect.objectContaining({
      kind: 'put', path: '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf', content: hardened, mode: 0o644, owner: 'root', group: 'root',
      validateInPlace: { argv: ['sshd', '-t'] }, notify: [{ unit: 'ssh.service', op: 'reload' }], why: 'password logins are not disabled by zanuri yet',
    })]);
  });

  it('lists AllowUsers only when users are given', () => {
    const plan = planOf(sshHarden, [[fileFact(dropInPath), 'absent'], ...services('inactive')], sshHarden.parseParams({ allowUsers: ['deploy', 'ops'] }));
    expect(String((plan.actions[0] as { content: string }).content)).toBe(hardened.replace('X11Forwarding no\n', 'X11Forwarding no\nAllowUsers deploy ops\n'));
  });

  it('restarts instead of reloading when ssh is socket-activated (Ubuntu 22.10+)', () => {
    const plan = planOf(sshHarden, [[fileFact(dropInPath), 'absent'], ...services('active')], params);
    expect(plan.actions[0]).toMatchObject({ notify: [{ unit: 'ssh.service', op: 'restart' }] });
  });

  it('leaves a converged host alone and says why', () => {
    const plan = planOf(sshHarden, [[fileFact(dropInPath), present(hardened)], ...services('inactive')], params);
    expect(plan).toEqual({ actions: [], noop: `${dropInPath} already disables password logins` });
  });

  it('puts back the owner of a drop-in someone else owns, and says so', () => {
    const plan = planOf(sshHarden, [[fileFact(dropInPath), present(hardened, '644', 'nobody', 'nogroup')], ...services('inactive')], params);
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'chmod', owner: 'root', group: 'root', why: `${dropInPath} is 0644 nobody:nogroup, not 0644 root:root` })]);
  });

  it('refuses bad values', () => {
    expect(() => sshHarden.parseParams({ permitRootLogin: 'yes' })).toThrow(/"no" or "prohibit-password"/);
    expect(() => sshHarden.parseParams({ allowUsers: ['ok', 'bad user'] })).toThrow(/allowUsers\[1\]/);
    expect(() => sshHarden.parseParams({ maxAuthTries: 0 })).toThrow(/maxAuthTries/);
  });
});
