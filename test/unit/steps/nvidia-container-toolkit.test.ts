import { describe, expect, it } from 'vitest';
import { fileFact, packagesFact } from '../../../src/facts/state.js';
import { keyringPath, sourcesPath } from '../../../src/resources/apt-repository.js';
import { archFact, checkArmoredKey } from '../../../src/steps/docker-shared.js';
import { cdiSpecPath, driverVersionFact, nvidiaContainerToolkit } from '../../../src/steps/nvidia-container-toolkit.js';
import { planOf, present } from './facts-of.js';

/** A key as `--set ...=@key.asc` delivers it: the file's lines, the blank line after the header gone. */
const keyLines = ['-----BEGIN PGP PUBLIC KEY BLOCK-----', 'mDMEaw43PhYJKwYBBAHaRw8BAQdAYOQVODk7LmtM0cFOe5bk1RZVFkw15VRwbgIq', '=QD/F', '-----END PGP PUBLIC KEY BLOCK-----'];
const canonicalKey = `${keyLines[0]}\n\n${keyLines.slice(1).join('\n')}\n`;
const standinUrl = 'http://10.213.0.1:8080/stable/deb';
const params = nvidiaContainerToolkit.parseParams({ repositoryKey: keyLines, repositoryUrl: standinUrl });
/** `nvidia-smi --query-gpu=driver_version --format=csv,noheader` on an 8x H100 host (driver 535.183.01), and where no driver is installed. */
const eightGpus = `${Array(8).fill('535.183.01').join('\n')}\n@@rc=0`;
const noDriver = 'sh: 1: nvidia-smi: not found\n@@rc=127';
const noGpu = 'NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n@@rc=9';

interface Host { smi?: string; spec?: string | null; installed?: boolean; repo?: boolean }
function planFor(host: Host, p = params) {
  return planOf(nvidiaContainerToolkit, [
    [archFact(), 'amd64\n@@rc=0'],
    [driverVersionFact(), host.smi ?? noDriver],
    [fileFact(cdiSpecPath), host.spec ? present(host.spec) : 'absent'],
    [fileFact(keyringPath('nvidia-container-toolkit')), host.repo === false ? 'absent' : present(canonicalKey)],
    [fileFact(sourcesPath('nvidia-container-toolkit')), host.repo === false ? 'absent'
      : present(`# Managed by zanuri (nvidia-container-toolkit): NVIDIA's container toolkit repository, trusted with its own key only.\nTypes: deb\nURIs: ${standinUrl}/amd64\nSuites: /\nSigned-By: /etc/apt/keyrings/zanuri-nvidia-container-toolkit.asc\n`)],
    [packagesFact(['nvidia-container-toolkit']), host.installed === false ? '' : 'nvidia-container-toolkit\tii \t1.17.0-1\n'],
  ], p);
}

describe('nvidia-container-toolkit parameters', () => {
  it('default to NVIDIA\'s shipped key, and restore the armor\'s blank line that a file\'s lines lose', () => {
    expect(nvidiaContainerToolkit.parseParams({})).toMatchObject({ repositoryKey: null });
    expect(params.repositoryKey).toBe(canonicalKey.trimEnd());
    expect(checkArmoredKey('x', 'k', canonicalKey)).toBe(canonicalKey.trimEnd());
    expect(() => nvidiaContainerToolkit.parseParams({ repositoryKey: keyLines, verifyImage: 'ubuntu; reboot' })).toThrow(/verifyImage must be an image reference/);
  });
});

describe('nvidia-container-toolkit plan', () => {
  it('on a fresh host configures the flat repository for its architecture with its own keyring, then installs the toolkit', () => {
    const plan = planFor({ repo: false, installed: false });
    expect(plan.actions.map((a) => (a.kind === 'put' ? a.path : a.kind === 'packages' ? `install ${a.install.join(' ')}` : a.kind === 'run' ? a.cmd.argv[2] : a.kind))).toEqual([
      keyringPath('nvidia-container-toolkit'), sourcesPath('nvidia-container-toolkit'), 'apt-get', 'install nvidia-container-toolkit',
    ]);
    const sources = plan.actions.find((a) => a.kind === 'put' && a.path === sourcesPath('nvidia-container-toolkit'));
    expect(sources?.kind === 'put' && String(sources.content)).toContain(`URIs: ${standinUrl}/amd64\nSuites: /\nSigned-By: ${keyringPath('nvidia-container-toolkit')}\n`);
  });

  it('without a GPU skips the CDI spec and says why', () => {
    expect(planFor({ smi: noDriver })).toEqual({ actions: [], noop: `nvidia-container-toolkit is installed from ${standinUrl}, docker has the nvidia runtime (/etc/docker/daemon.json); CDI spec skipped: nvidia-smi is not installed (no NVIDIA driver)` });
    expect(planFor({ smi: noGpu })).toMatchObject({ actions: [], noop: expect.stringMatching(/CDI spec skipped: nvidia-smi finds no GPU with a loaded driver \(exit 9\)$/) });
  });

  it('with GPUs generates the CDI spec, and again when the driver changed', () => {
    const [generate] = planFor({ smi: eightGpus }).actions;
    expect(generate?.kind === 'run' && generate.cmd.argv).toEqual(['timeout', '120', 'nvidia-ctk', 'cdi', 'generate', `--output=${cdiSpecPath}`]);
    expect(generate?.why).toMatch(/does not exist/);
    const spec = '---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\n  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.535.183.01\n';
    expect(planFor({ smi: eightGpus, spec })).toMatchObject({ actions: [], noop: expect.stringMatching(/CDI spec for driver 535\.183\.01$/) });
    expect(planFor({ smi: eightGpus, spec: spec.replace(/535\.183\.01/g, '535.104.05') }).actions[0]?.why).toMatch(/generated for another driver than 535\.183\.01/);
  });

  it('leaves the CDI spec alone when not wanted', () => {
    const off = nvidiaContainerToolkit.parseParams({ repositoryKey: keyLines, repositoryUrl: standinUrl, cdi: false });
    expect(planFor({ smi: eightGpus }, off)).toMatchObject({ actions: [], noop: expect.stringMatching(/CDI spec not wanted$/) });
  });
});
