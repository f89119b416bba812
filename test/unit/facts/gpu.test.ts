import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  gpuFacts,
  normalizePciAddress,
  nvidiaFamily,
  parseLspci,
  parseNvidiaSmiQuery,
} from '../../../src/facts/gpu.js';

// No GPU exists on the machine running these tests: every input is real captured output kept under test/facts/,
// with its source (URL, date, what was trimmed) in the .source.md file beside it.
function fixture(path: string): string {
  return readFileSync(fileURLToPath(new URL(`../../facts/${path}`, import.meta.url)), 'utf8');
}

const MiB = 1048576;
const h100 = fixture('gpu/h100-80gb-hbm3.nvidia-smi-q.txt');
const a100 = fixture('gpu/a100-sxm4-80gb.nvidia-smi-q.txt');
const rtx4090 = fixture('gpu/rtx-4090.nvidia-smi-q-gpu-section.txt');
const zenbookLspci = fixture('lspci/zenbook-ux371-no-nvidia.lspci-nn.txt');
const hgxLspci = fixture('lspci/hgx-h100-kvm-host-no-driver.lspci-Dnn-grep.txt');

describe('parseNvidiaSmiQuery', () => {
  it('reads VRAM, driver and CUDA version from a captured H100 80GB HBM3 nvidia-smi -q', () => {
    const result = parseNvidiaSmiQuery(h100);
    expect(result.driverVersion).toBe('560.35.03');
    expect(result.cudaVersion).toBe('12.6');
    expect(result.devices).toEqual([
      {
        vendor: 'nvidia',
        name: 'NVIDIA H100 80GB HBM3',
        family: 'H100',
        vramBytes: 81559 * MiB,
        pciAddress: '0000:db:00.0',
        pciId: '10de:2330',
        driverMissing: false,
      },
    ]);
  });

  it('takes VRAM from FB Memory Usage, not the 131072 MiB BAR1 aperture, in a captured H100 and A100', () => {
    expect(parseNvidiaSmiQuery(h100).devices[0]?.vramBytes).not.toBe(131072 * MiB);
    expect(parseNvidiaSmiQuery(a100).devices[0]?.vramBytes).toBe(81920 * MiB);
  });

  it('reads a captured A100-SXM4-80GB nvidia-smi -q -i 0 (older "Clocks Throttle Reasons" layout)', () => {
    const result = parseNvidiaSmiQuery(a100);
    expect(result.driverVersion).toBe('525.60.13');
    expect(result.cudaVersion).toBe('12.0');
    expect(result.devices).toHaveLength(1);
    expect(result.devices[0]).toMatchObject({
      name: 'NVIDIA A100-SXM4-80GB',
      family: 'A100',
      pciAddress: '0000:07:00.0',
      pciId: '10de:20b2',
      driverMissing: false,
    });
  });

  it('reads a captured RTX 4090 GPU section whose header lines were not pasted: versions stay null', () => {
    const result = parseNvidiaSmiQuery(rtx4090);
    expect(result.driverVersion).toBeNull();
    expect(result.cudaVersion).toBeNull();
    expect(result.devices).toEqual([
      {
        vendor: 'nvidia',
        name: 'NVIDIA GeForce RTX 4090',
        family: 'RTX 4090',
        vramBytes: 24564 * MiB,
        pciAddress: '0000:01:00.0',
        pciId: '10de:2684',
        driverMissing: false,
      },
    ]);
  });

  it('accepts the driver 610+ "CUDA UMD Version" label (the H100 capture with that one label edited)', () => {
    // EDITED, not captured: no public `nvidia-smi -q` from a 610+ driver was found, only the default table
    // ("KMD Version: 610.43.02  CUDA UMD Version: 13.3"). The label is swapped with alignment kept.
    const edited = h100.replace('CUDA Version    ', 'CUDA UMD Version');
    expect(edited).toContain('CUDA UMD Version                          : 12.6');
    expect(parseNvidiaSmiQuery(edited).cudaVersion).toBe('12.6');
  });

  it('treats N/A, [N/A] and "Not Found" as absent values', () => {
    // "CUDA Version : Not Found" is printed by vGPU host drivers (seen in a public nvidia-smi -q -d MEMORY capture).
    const text = h100.replace('CUDA Version                              : 12.6', 'CUDA Version                              : Not Found');
    expect(parseNvidiaSmiQuery(text).cudaVersion).toBeNull();
    expect(parseNvidiaSmiQuery(h100.replace(': 81559 MiB', ': N/A')).devices[0]?.vramBytes).toBeNull();
    expect(parseNvidiaSmiQuery(h100.replace(': 81559 MiB', ': [N/A]')).devices[0]?.vramBytes).toBeNull();
  });

  it('returns nothing for empty output, a missing tool and garbage, without throwing', () => {
    const empty = { driverVersion: null, cudaVersion: null, devices: [] };
    expect(parseNvidiaSmiQuery('')).toEqual(empty);
    expect(parseNvidiaSmiQuery('sh: 1: nvidia-smi: not found\n')).toEqual(empty);
    expect(
      parseNvidiaSmiQuery(
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
      ),
    ).toEqual(empty);
    expect(parseNvidiaSmiQuery('\u0000\u0001 GPU : : :\n\t\tTotal : lots')).toEqual(empty);
  });
});

describe('parseLspci', () => {
  it('reads every device of a captured lspci -nn with no NVIDIA GPU, including a five-digit VMD domain', () => {
    const devices = parseLspci(zenbookLspci);
    expect(devices).toHaveLength(24);
    expect(devices[1]).toEqual({
      pciAddress: '0000:00:02.0',
      classId: '0300',
      vendorId: '8086',
      deviceId: '9a49',
      description: 'Intel Corporation TigerLake-LP GT2 [Iris Xe Graphics]',
    });
    expect(devices[23]).toMatchObject({ pciAddress: '10000:e1:00.0', classId: '0108', vendorId: '15b7', deviceId: '5006' });
    expect(devices.some((d) => d.vendorId === '10de')).toBe(false);
  });

  it('reads the numeric ids of captured H100 and NVSwitch lines, keeping brackets inside the description', () => {
    const devices = parseLspci(hgxLspci);
    expect(devices).toHaveLength(13);
    expect(devices[5]).toEqual({
      pciAddress: '0000:1b:00.0',
      classId: '0302',
      vendorId: '10de',
      deviceId: '2330',
      description: 'NVIDIA Corporation GH100 [H100 SXM5 80GB]',
    });
    expect(devices[1]).toMatchObject({ classId: '0680', deviceId: '22a3' });
  });

  it('reads the probe sysfs fallback line that says "Unknown vendor" by its numeric id', () => {
    // This line shape is the probe's own output (written by the lead's sh probe from sysfs), not a captured one.
    expect(parseLspci('0000:01:00.0 3D controller [0302]: Unknown vendor [10de:2330]\n')).toEqual([
      { pciAddress: '0000:01:00.0', classId: '0302', vendorId: '10de', deviceId: '2330', description: 'Unknown vendor' },
    ]);
  });

  it('returns nothing for empty output, a missing tool and garbage', () => {
    expect(parseLspci('')).toEqual([]);
    expect(parseLspci('sh: 1: lspci: not found')).toEqual([]);
    expect(parseLspci('{"not": "lspci"}\n\tKernel driver in use: nvidia\n')).toEqual([]);
  });
});

describe('normalizePciAddress', () => {
  it('maps the nvidia-smi 8-digit domain and the lspci 4-digit domain to one form', () => {
    expect(normalizePciAddress('00000000:DB:00.0')).toBe('0000:db:00.0');
    expect(normalizePciAddress('0000:db:00.0')).toBe('0000:db:00.0');
    expect(normalizePciAddress('db:00.0')).toBe('0000:db:00.0');
    expect(normalizePciAddress('10000:e1:00.0')).toBe('10000:e1:00.0');
    expect(normalizePciAddress('not an address')).toBeNull();
  });
});

describe('nvidiaFamily', () => {
  it('names families from marketing names and from numeric device ids', () => {
    expect(nvidiaFamily('NVIDIA H100 80GB HBM3')).toBe('H100');
    expect(nvidiaFamily('NVIDIA A100-SXM4-80GB')).toBe('A100');
    expect(nvidiaFamily('NVIDIA GeForce RTX 4090')).toBe('RTX 4090');
    expect(nvidiaFamily('NVIDIA GeForce RTX 3090')).toBe('RTX 3090');
    expect(nvidiaFamily('NVIDIA L40S')).toBe('L40S');
    expect(nvidiaFamily('NVIDIA L4')).toBe('L4');
    expect(nvidiaFamily('NVIDIA A10')).toBe('A10');
    expect(nvidiaFamily('Tesla T4')).toBe('T4');
    expect(nvidiaFamily('Tesla V100-PCIE-16GB')).toBe('V100');
    expect(nvidiaFamily('NVIDIA H200')).toBe('H200');
    expect(nvidiaFamily('NVIDIA B200')).toBe('B200');
    expect(nvidiaFamily('NVIDIA RTX 6000 Ada Generation')).toBe('RTX 6000 Ada');
    expect(nvidiaFamily(null, '2330')).toBe('H100');
    expect(nvidiaFamily(null, '20B2')).toBe('A100');
    expect(nvidiaFamily(null, '2684')).toBe('RTX 4090');
    expect(nvidiaFamily(null, 'ffff')).toBeNull();
    expect(nvidiaFamily(null)).toBeNull();
  });
});

describe('gpuFacts', () => {
  it('reports each GPU of a captured 8x H100 host whose driver is not loaded as driverMissing, not NVSwitches', () => {
    const facts = gpuFacts('', hgxLspci);
    expect(facts.driverVersion).toBeNull();
    expect(facts.cudaVersion).toBeNull();
    expect(facts.devices).toHaveLength(8);
    expect(facts.devices[0]).toEqual({
      vendor: 'nvidia',
      name: null,
      family: 'H100',
      vramBytes: null,
      pciAddress: '0000:1b:00.0',
      pciId: '10de:2330',
      driverMissing: true,
    });
    expect(facts.devices.every((d) => d.driverMissing && d.vramBytes === null)).toBe(true);
  });

  it('does not count a GPU twice when the driver and the bus both report it', () => {
    // The lspci side is the probe's sysfs line for the same device as the captured H100 (Bus Id 00000000:DB:00.0,
    // Device Id 0x233010DE), written in lspci -D form; it is derived from the capture, not captured itself.
    const facts = gpuFacts(h100, '0000:db:00.0 3D controller [0302]: Unknown vendor [10de:2330]\n');
    expect(facts.devices).toHaveLength(1);
    expect(facts.devices[0]).toMatchObject({ pciAddress: '0000:db:00.0', driverMissing: false, vramBytes: 81559 * MiB });
  });

  it('adds the bus GPUs the driver does not report next to the ones it does', () => {
    const facts = gpuFacts(h100, hgxLspci);
    expect(facts.driverVersion).toBe('560.35.03');
    expect(facts.devices).toHaveLength(9);
    expect(facts.devices.filter((d) => d.driverMissing)).toHaveLength(8);
  });

  it('finds no GPU on a captured laptop without NVIDIA and without nvidia-smi', () => {
    expect(gpuFacts('', zenbookLspci)).toEqual({ driverVersion: null, cudaVersion: null, devices: [] });
  });

  it('gives an empty result for empty and garbage input', () => {
    expect(gpuFacts('', '')).toEqual({ driverVersion: null, cudaVersion: null, devices: [] });
    expect(gpuFacts('garbage', 'more garbage')).toEqual({ driverVersion: null, cudaVersion: null, devices: [] });
  });
});
