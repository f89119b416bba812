import { describe, expect, it } from 'vitest';
import { gpuProfileParams } from '../../../src/engine/defaults.js';
import { loadProfiles } from '../../../src/profiles/load.js';
import { cudaToolkit } from '../../../src/steps/cuda-toolkit.js';
import { fabricManager } from '../../../src/steps/fabric-manager.js';
import { nvidiaDriver } from '../../../src/steps/nvidia-driver.js';

describe('the profile\'s GPU minimums as the GPU steps\' parameters', () => {
  it('zanuri-dev (driver 535+, CUDA 12.1+) gives branch 535 to the driver, Fabric Manager and CUDA, and CUDA minimum 12.1', async () => {
    const [profile] = await loadProfiles({ names: ['zanuri-dev'] });
    const params = gpuProfileParams(profile?.requirements ?? []);
    expect(params).toEqual({
      'nvidia-driver': { branch: 535 },
      'fabric-manager': { branch: 535 },
      'cuda-toolkit': { driverBranch: 535, minimum: '12.1' },
    });
    // The steps take them as they are.
    expect(nvidiaDriver.parseParams(params['nvidia-driver'])).toMatchObject({ branch: 535 });
    expect(fabricManager.parseParams(params['fabric-manager'])).toMatchObject({ branch: 535 });
    expect(cudaToolkit.parseParams(params['cuda-toolkit'])).toMatchObject({ driverBranch: 535, minimum: '12.1' });
  });

  it('raises what the playbook asks for to the minimum, never lowers it', () => {
    const requirements = [{ check: 'gpu.driver', minVersion: '570' }, { check: 'gpu.cuda', minVersion: '12.8' }];
    expect(gpuProfileParams(requirements, { 'nvidia-driver': { branch: 535 }, 'cuda-toolkit': { minimum: '12.1', driverBranch: 535 } })).toEqual({
      'nvidia-driver': { branch: 570 }, 'fabric-manager': { branch: 570 }, 'cuda-toolkit': { driverBranch: 570, minimum: '12.8' },
    });
    expect(gpuProfileParams(requirements, { 'nvidia-driver': { branch: 580 }, 'cuda-toolkit': { minimum: '13.0', driverBranch: 580 } })).toEqual({
      'nvidia-driver': { branch: 580 }, 'fabric-manager': { branch: 570 }, 'cuda-toolkit': { driverBranch: 580, minimum: '13.0' },
    });
  });

  it('gives nothing for a profile without GPU minimums, for recommended-only ones, or for values the steps could not take', async () => {
    const [profile] = await loadProfiles({ names: ['infra-api'] });
    expect(gpuProfileParams(profile?.requirements ?? [])).toEqual({});
    expect(gpuProfileParams([{ check: 'gpu.driver', level: 'recommended', minVersion: '580' }])).toEqual({});
    expect(gpuProfileParams([{ check: 'gpu.driver', minVersion: 'latest' }, { check: 'gpu.cuda', minVersion: '12' }])).toEqual({});
  });
});
