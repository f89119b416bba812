import { describe, expect, it } from 'vitest';
import { fileFact, serviceFact } from '../../../src/facts/state.js';
import { dropInPath, renderDropIn, sshHarden } from '../../../src/steps/ssh-harden.js';
import { b64, factsOf } from './facts-of.js';

const info = { loginUser: 'root', sshPort: 22, local: false };
const params = sshHarden.parseParams({});
const services = (socket: string): Array<[ReturnType<typeof serviceFact>, string]> => [
  [serviceFact('ssh.service'), 'enabled\nactive'], [serviceFact('sshd.service'), 'alias\nactive'], [serviceFact('ssh.socket'), `disabled\n${socket}`],
];

describe('ssh-harden', () => {
  it('writes a drop-in that sorts before cloud-init\'s and validates it with sshd -t before reloading', () => {
    const plan = sshHarden.plan(factsOf([[fileFact(dropInPath), 'absent'], ...services('inactive')]), params, info);
    expect(plan.actions).toHaveLength(1);
    expect(plan.actions[0]).toMatchObject({
      kind: 'put', path: '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf', validateInPlace: { argv: ['sshd', '-t'] },
      notify: [{ unit: 'ssh.service', op: 'reload' }],
    });
    const content = String((plan.actions[0] as { content: string }).content);
    expect(content).toMatch(/^PasswordAuthentication no$/m);
    expect(content).toMatch(/^PermitRootLogin prohibit-password$/m);
    expect(content).toMatch(/^MaxAuthTries 3$/m);
    expect(content).toMatch(/^X11Forwarding no$/m);
  });

  it('restarts instead of reloading when ssh is socket-activated (Ubuntu 22.10+)', () => {
    const plan = sshHarden.plan(factsOf([[fileFact(dropInPath), 'absent'], ...services('active')]), params, info);
    expect(plan.actions[0]).toMatchObject({ notify: [{ unit: 'ssh.service', op: 'restart' }] });
  });

  it('leaves a converged host alone and says why', () => {
    const plan = sshHarden.plan(factsOf([[fileFact(dropInPath), `present 644 root root\n${b64(renderDropIn(params))}`], ...services('inactive')]), params, info);
    expect(plan).toMatchObject({ actions: [], noop: expect.stringMatching(/already disables password logins/) });
  });

  it('refuses bad values', () => {
    expect(() => sshHarden.parseParams({ permitRootLogin: 'yes' })).toThrow(/"no" or "prohibit-password"/);
    expect(() => sshHarden.parseParams({ allowUsers: ['ok', 'bad user'] })).toThrow(/allowUsers\[1\]/);
    expect(() => sshHarden.parseParams({ maxAuthTries: 0 })).toThrow(/maxAuthTries/);
  });
});
