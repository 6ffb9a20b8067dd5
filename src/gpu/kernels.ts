// Every kernel family's compiled pipelines, created once per device.
import { createCutKernels, type CutKernels } from './cuts/cuts.js';
import { createPairKernels, type PairKernels } from './pairs/pairs.js';
import { createScanKernels } from './scan/scan.js';
import { createSortKernels, type SortKernels } from './sort/sort.js';

export type Kernels = SortKernels & CutKernels & PairKernels;

export async function createKernels(device: GPUDevice, software: boolean): Promise<Kernels> {
  const [scan, sort, cuts, pairs] = await Promise.all([createScanKernels(device), createSortKernels(device), createCutKernels(device, software), createPairKernels(device)]);
  return { ...scan, ...sort, ...cuts, ...pairs };
}
