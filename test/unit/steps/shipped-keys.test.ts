/**
 * The repository keys zanuri ships (templates/nvidia/KEYS.md, templates/docker/KEYS.md) are the vendors'
 * real keys: real gpg reads each file and its primary fingerprint must equal the constant the steps name.
 * A fingerprint cannot be forged, so this is the proof; the steps use these files when no repositoryKey is given.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { dockerKeyFingerprint, toolkitKeyFingerprint } from '../../../src/steps/docker-shared.js';
import { nvidiaKeyFingerprint } from '../../../src/steps/nvidia-shared.js';
import { ctx } from './facts-of.js';

const home = mkdtempSync(join(tmpdir(), 'zanuri-keys-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

/** gpg --show-keys --with-colons: the primary key's fingerprint and user ids, imported nowhere. */
function showKey(file: string): { fingerprints: string[]; uids: string[]; primaries: number } {
  const out = execFileSync('gpg', ['--batch', '--show-keys', '--with-colons', '--with-fingerprint', file], { env: { ...process.env, GNUPGHOME: home }, encoding: 'utf8' });
  const lines = out.split('\n').map((l) => l.split(':'));
  const primaries = lines.filter((l) => l[0] === 'pub').length;
  // The fpr record right after "pub" is the primary key's; later ones belong to subkeys.
  const fingerprints = lines.filter((l, i) => l[0] === 'fpr' && lines[i - 1]?.[0] === 'pub').map((l) => l[9] ?? '');
  return { fingerprints, uids: lines.filter((l) => l[0] === 'uid').map((l) => l[9] ?? ''), primaries };
}

const template = (name: string): string => fileURLToPath(new URL(`../../../templates/${name}`, import.meta.url));

describe('the shipped repository keys', () => {
  const cases = [
    { file: 'nvidia/cuda-archive-key.asc', fingerprint: nvidiaKeyFingerprint, uid: 'cudatools <cudatools@nvidia.com>' },
    { file: 'docker/docker-archive-key.asc', fingerprint: dockerKeyFingerprint, uid: 'Docker Release (CE deb) <docker@docker.com>' },
    { file: 'docker/nvidia-container-toolkit-key.asc', fingerprint: toolkitKeyFingerprint, uid: 'NVIDIA CORPORATION (Open Source Projects) <cudatools@nvidia.com>' },
  ];

  for (const { file, fingerprint, uid } of cases) {
    it(`${file} is one public key whose primary fingerprint gpg reads as ${fingerprint}`, () => {
      const shown = showKey(template(file));
      expect(shown.primaries).toBe(1);
      expect(shown.fingerprints).toEqual([fingerprint]);
      expect(shown.uids).toEqual([uid]);
    });
  }

  it('render unchanged as templates (no Mustache tags in them), so the steps write the files byte for byte', () => {
    for (const { file } of cases) expect(ctx.templates.render(file, {}).text).toBe(readFileSync(template(file), 'utf8'));
  });

  it('gpg refuses a key whose armor was altered, so a corrupted copy cannot pass this test', () => {
    const text = readFileSync(template('nvidia/cuda-archive-key.asc'), 'utf8').replace('mQINBGJYmlEBEAC6', 'mQINBGJYmlEBEAC7');
    const bad = join(home, 'bad.asc');
    execFileSync('sh', ['-c', 'cat > "$1"', 'sh', bad], { input: text });
    expect(() => showKey(bad)).toThrow();
  });
});
