// Every kernel family's compiled pipelines, created once per device.
import { createBalanceKernels, type BalanceKernels } from './balance/balance.js';
import { createCutKernels, type CutKernels } from './cuts/cuts.js';
import { createPairKernels, type PairKernels } from './pairs/pairs.js';
import { createScanKernels } from './scan/scan.js';
import { createSortKernels, type SortKernels } from './sort/sort.js';

export type Kernels = SortKernels & CutKernels & PairKernels & BalanceKernels;

export async function createKernels(device: GPUDevice, software: boolean): Promise<Kernels> {
  const [scan, sort, cuts, pairs, balance] = await Promise.all([
    createScanKernels(device), createSortKernels(device), createCutKernels(device, software), createPairKernels(device), createBalanceKernels(device, software),
  ]);
  return { ...scan, ...sort, ...cuts, ...pairs, ...balance };
}
