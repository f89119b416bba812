import { mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveEndpoint } from '../../../src/transport/ssh-config.js';
import { ConfigError } from '../../../src/core/errors.js';

describe('resolveEndpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zanuri-sshcfg-'));
  const config = join(dir, 'config');
  writeFileSync(config, [
    'Host gpu2',
    '  HostName 10.1.2.3',
    '  User admin',
    '  Port 2222',
    '  ProxyJump ops@bastion:2200,jump2',
    '  IdentityFile ~/.ssh/gpu_ed25519',
    '  StrictHostKeyChecking accept-new',
    '  UserKnownHostsFile %d/.ssh/zanuri_known_hosts',
    'Host legacy',
    '  ProxyCommand nc %h %p',
    '',
  ].join('\n'));

  it('resolves an alias the way OpenSSH does (ssh -G)', async () => {
    const endpoint = await resolveEndpoint({ alias: 'gpu2' }, { configFile: config });
    expect(endpoint).toMatchObject({
      alias: 'gpu2', host: '10.1.2.3', user: 'admin', port: 2222, proxyJump: ['ops@bastion:2200', 'jump2'],
      strictHostKeyChecking: 'accept-new', knownHostsFiles: [join(homedir(), '.ssh/zanuri_known_hosts')], proxyCommand: null,
    });
    expect(endpoint.identityFiles).toContain(join(homedir(), '.ssh/gpu_ed25519'));
  });

  it('lets user and port given on the command line win over the config', async () => {
    const endpoint = await resolveEndpoint({ alias: 'gpu2', user: 'root', port: 22 }, { configFile: config });
    expect(endpoint).toMatchObject({ user: 'root', port: 22, host: '10.1.2.3' });
  });

  it('reports a ProxyCommand so the connection can refuse it', async () => {
    expect((await resolveEndpoint({ alias: 'legacy' }, { configFile: config })).proxyCommand).toBe('nc %h %p');
  });

  it('turns a broken config file into a ConfigError', async () => {
    const broken = join(dir, 'broken');
    writeFileSync(broken, 'Host x\n  NoSuchOption yes\n');
    await expect(resolveEndpoint({ alias: 'x' }, { configFile: broken })).rejects.toBeInstanceOf(ConfigError);
  });
});
