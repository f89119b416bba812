/** The PCI, Secure Boot and driver-version parsers the GPU steps plan from, on captured real output (sources in test/facts/). */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { branchOf, driverVersionOf, gpuGeneration, nvidiaPci, parseLoadedNvidiaVersion, parseLspci, parseMokutilSbState } from '../../../src/facts/gpu.js';

const fixture = (path: string): string => readFileSync(new URL(`../../facts/${path}`, import.meta.url), 'utf8');

describe('nvidiaPci on captured lspci output', () => {
  it('finds 8 H100 GPUs and 4 NVSwitch bridges on an HGX H100, and not the ASPEED VGA', () => {
    const pci = nvidiaPci(fixture('lspci/hgx-h100-kvm-host-no-driver.lspci-Dnn-grep.txt'));
    expect(pci.gpus.map((d) => d.deviceId)).toEqual(Array(8).fill('2330'));
    expect(pci.nvswitches.map((d) => d.pciAddress)).toEqual(['0000:07:00.0', '0000:08:00.0', '0000:09:00.0', '0000:0a:00.0']);
    expect(pci.gpus.map(gpuGeneration)).toEqual(Array(8).fill('hopper'));
  });
  it('finds 8 A100 GPUs and 6 NVSwitches on an HGX A100 (Ampere)', () => {
    const pci = nvidiaPci(fixture('gpu/a100-sxm4-80gb-hgx.lspci-nn.txt'));
    expect([pci.gpus.length, pci.nvswitches.length]).toEqual([8, 6]);
    expect(new Set(pci.gpus.map(gpuGeneration))).toEqual(new Set(['ampere']));
  });
  it('counts an RTX 4090 (a VGA controller) as one Ada GPU and its audio function as nothing', () => {
    const pci = nvidiaPci(fixture('gpu/rtx-4090.lspci-nn.txt'));
    expect(pci.gpus.map((d) => [d.classId, gpuGeneration(d)])).toEqual([['0300', 'ada']]);
    expect(pci.nvswitches).toEqual([]);
  });
  it('finds nothing on a laptop without NVIDIA devices, or in empty output', () => {
    expect(nvidiaPci(fixture('lspci/zenbook-ux371-no-nvidia.lspci-nn.txt'))).toEqual({ gpus: [], nvswitches: [] });
    expect(nvidiaPci('')).toEqual({ gpus: [], nvswitches: [] });
  });
  it('tells the generation from the device id alone when the sysfs fallback prints no chip name', () => {
    const line = (id: string): string => `0000:01:00.0 Class [0302]: Unknown vendor [10de:${id}]`;
    const generation = (id: string): string => gpuGeneration(parseLspci(line(id))[0]!);
    expect(['1db4', '1eb8', '20b2', '2204', '2330', '2342', '2684', '2901', '2b85'].map(generation))
      .toEqual(['pre-turing', 'turing', 'ampere', 'ampere', 'hopper', 'hopper', 'ada', 'blackwell', 'blackwell']);
  });
});

describe('Secure Boot and driver versions', () => {
  it('reads mokutil --sb-state in its three real forms', () => {
    expect(parseMokutilSbState(fixture('gpu/mokutil-sb-state.enabled.txt'))).toBe('enabled');
    expect(parseMokutilSbState(fixture('gpu/mokutil-sb-state.disabled.txt'))).toBe('disabled');
    expect(parseMokutilSbState(fixture('gpu/mokutil-sb-state.bios.txt'))).toBe('not-uefi');
    expect(parseMokutilSbState('sh: 1: mokutil: not found')).toBe('unknown');
  });
  it('reads the loaded module version from sysfs or /proc/driver/nvidia/version, and the driver version inside package versions', () => {
    expect(parseLoadedNvidiaVersion('535.216.01\n')).toBe('535.216.01');
    expect(parseLoadedNvidiaVersion('NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  Thu Oct 19 18:56:32 UTC 2023\n')).toBe('535.129.03');
    expect(parseLoadedNvidiaVersion('')).toBeNull();
    expect(driverVersionOf('535.216.01-1~deb12u1')).toBe('535.216.01');
    expect(driverVersionOf('1:560.35.03-1')).toBe('560.35.03');
    expect(driverVersionOf('5.15.0-91.101')).toBeNull();
    expect(branchOf('570.124.06')).toBe(570);
  });
});
