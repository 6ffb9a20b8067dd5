// The worker side of kk-background.ts: runs kk() on the jobs it is sent, one at a time, and
// sends each grouping back (its buffer transferred, not copied). The same module, the same
// function: the grouping is exactly the one kk() returns on the main thread.
import { parentPort } from 'node:worker_threads';
import { kk } from './kk.js';

interface Job { id: number; cost: Float64Array; order: Uint32Array; groups: number; equalCount: boolean }

parentPort?.on('message', (job: Job) => {
  const group = kk({ cost: job.cost, tokens: new Uint32Array(0), order: job.order, groups: job.groups, equalCount: job.equalCount, padding: false });
  parentPort!.postMessage({ id: job.id, group }, [group.buffer as ArrayBuffer]);
});
