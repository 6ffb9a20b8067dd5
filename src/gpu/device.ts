// Acquiring a WebGPU device through Dawn's Node bindings (npm `webgpu`), and compiling shaders
// with errors reported as one line.

import { closeSync, fstatSync, openSync } from 'node:fs';
import { create, globals } from 'webgpu';

/** No usable WebGPU adapter (or device) on this machine. */
export class GpuUnavailableError extends Error {
  constructor(message: string) {
    super(message.replace(/\s*\n\s*/g, ' '));
    this.name = 'GpuUnavailableError';
  }
}

/** `auto` passes over a software adapter (the CPU path plans faster there). */
export class SoftwareAdapterError extends Error {
  constructor(readonly adapterName: string) {
    super(`${adapterName} is a software adapter`);
    this.name = 'SoftwareAdapterError';
  }
}

export interface GpuDevice {
  device: GPUDevice;
  /** e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe-llvm-15-0-6-256-bits (opengles)". */
  adapterName: string;
  /** A CPU rasteriser (llvmpipe, lavapipe, SwiftShader): kernels size their loops for it. */
  software: boolean;
  /** The device was created with 'timestamp-query' (asked for, and the adapter has it). */
  timestamps: boolean;
}

/** Limits the kernels need, above the WebGPU defaults (compatibility mode defaults are lower). */
const WANTED_LIMITS = {
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupStorageSize: 16384,
  maxStorageBufferBindingSize: 1 << 30,
  maxBufferSize: 1 << 30,
} as const;

let globalsInstalled = false;

/** GPUBufferUsage, GPUMapMode, ... are globals in a browser; Dawn's Node module exports them. */
function installWebGpuGlobals(): void {
  if (globalsInstalled) return;
  for (const [name, value] of Object.entries(globals)) {
    if (!(name in globalThis)) (globalThis as Record<string, unknown>)[name] = value;
  }
  globalsInstalled = true;
}

/**
 * Runs `fn` with fd 2 pointed at /dev/null, for Dawn's warnings printed synchronously from
 * native code ("artificially reduced", missing libvulkan, XDG_RUNTIME_DIR). Node has no dup2, so
 * this reopens the original target through /proc/self/fd (Linux only) and relies on open()
 * returning the lowest free descriptor; whenever that cannot be done safely, stderr stays as is.
 */
function withStderrSilenced<T>(fn: () => T): T {
  if (process.platform !== 'linux') return fn();
  let saved: number;
  try {
    fstatSync(0);
    fstatSync(1); // fd 0 and 1 open, so the next open() after closing fd 2 returns 2
    saved = openSync('/proc/self/fd/2', 'a'); // fails for sockets: then we do not silence
  } catch {
    return fn();
  }
  let silenced = false;
  try {
    closeSync(2);
    const devNull = openSync('/dev/null', 'a');
    silenced = devNull === 2;
    if (!silenced) closeSync(devNull);
    return fn();
  } finally {
    if (silenced) closeSync(2);
    const restored = openSync(`/proc/self/fd/${saved}`, 'a');
    if (restored !== 2) closeSync(restored);
    closeSync(saved);
  }
}

function adapterLabel(adapter: GPUAdapter, backend: string): string {
  const info = adapter.info;
  const name = [info.device, info.description, info.vendor, info.architecture]
    .map((s) => (s ?? '').trim().replace(/[-\s]+$/, ''))
    .find((s) => s.length > 0) ?? 'unknown adapter';
  return backend === 'default' ? name : `${name} (${backend})`;
}

function limitsFor(adapter: GPUAdapter): Record<string, number> {
  const out: Record<string, number> = {};
  const available = adapter.limits as unknown as Record<string, number>;
  for (const [key, wanted] of Object.entries(WANTED_LIMITS)) {
    out[key] = Math.min(wanted, available[key] ?? wanted);
  }
  return out;
}

/**
 * The default adapter (Vulkan/Metal/D3D12 on real GPUs), else the OpenGL ES compatibility
 * adapter (Mesa llvmpipe on a headless Linux box, through surfaceless EGL).
 */
export async function acquireDevice(opts: { verbose?: boolean; timestamps?: boolean; allowSoftware?: boolean } = {}): Promise<GpuDevice> {
  installWebGpuGlobals();
  // Without a display, Mesa's EGL needs the surfaceless platform or eglInitialize fails.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  const quiet = <T>(fn: () => T): T => (opts.verbose ? fn() : withStderrSilenced(fn));
  const attempts: { backend: string; flags: string[]; options: GPURequestAdapterOptions }[] = [
    { backend: 'default', flags: [], options: {} },
    { backend: 'opengles', flags: ['backend=opengles'], options: { featureLevel: 'compatibility' } },
  ];
  const failures: string[] = [];
  for (const attempt of attempts) {
    try {
      // Dawn prints its warnings synchronously inside these calls, so only they are silenced.
      // Timing: Dawn quantises timestamps by default (a browser's timing-attack guard).
      const flags = opts.timestamps ? [...attempt.flags, 'disable-dawn-features=timestamp_quantization'] : attempt.flags;
      const gpu = quiet(() => create(flags));
      const adapter = await quiet(() => gpu.requestAdapter(attempt.options));
      if (!adapter) { failures.push(`${attempt.backend}: no adapter`); continue; }
      const adapterName = adapterLabel(adapter, attempt.backend);
      const software = attempt.backend === 'opengles' || /llvmpipe|lavapipe|softpipe|swiftshader/i.test(adapterName);
      // Before any device exists: passing over a software adapter costs only the probe.
      if (software && opts.allowSoftware === false) throw new SoftwareAdapterError(adapterName);
      const requiredLimits = limitsFor(adapter);
      let timestamps = opts.timestamps === true && adapter.features.has('timestamp-query');
      let device: GPUDevice;
      try {
        device = await quiet(() => adapter.requestDevice({ requiredLimits, requiredFeatures: timestamps ? ['timestamp-query'] : [] }));
      } catch (err) {
        if (!timestamps) throw err;
        timestamps = false; // timing is optional: retry without it
        device = await quiet(() => adapter.requestDevice({ requiredLimits }));
      }
      // Keep the instance alive as long as the device (dawn.node tears both down together).
      (device as unknown as { __postbalanceGpu?: GPU }).__postbalanceGpu = gpu;
      return { device, adapterName, software, timestamps };
    } catch (err) {
      if (err instanceof SoftwareAdapterError) throw err;
      failures.push(`${attempt.backend}: ${(err as Error).message ?? String(err)}`);
    }
  }
  throw new GpuUnavailableError(`no WebGPU adapter found (${failures.join('; ')})`);
}

/** Compiles WGSL; a compile error becomes a one-line Error naming the file, line and column. */
export async function compileShader(device: GPUDevice, file: string, code: string): Promise<GPUShaderModule> {
  // The scope must close before any await: scopes are a per-device stack, and concurrent
  // compiles would otherwise see each other's errors.
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: file, code });
  const scopeErrorPromise = device.popErrorScope();
  const [info, scopeError] = await Promise.all([module.getCompilationInfo(), scopeErrorPromise]);
  const firstError = info.messages.find((m) => m.type === 'error');
  if (firstError) {
    throw new Error(`WGSL compile error in ${file}:${firstError.lineNum}:${firstError.linePos}: ${firstError.message.replace(/\s*\n\s*/g, ' ')}`);
  }
  if (scopeError) {
    // Dawn's message starts "Error while parsing WGSL: :line:col error: ...", then the source.
    throw new Error(`WGSL error in ${file}: ${scopeError.message.split('\n')[0].replace(/^Error while parsing WGSL: :/, '')}`);
  }
  return module;
}

/** A compute pipeline with an auto layout; validation errors become one-line Errors. */
export async function createPipeline(device: GPUDevice, file: string, module: GPUShaderModule, entryPoint: string): Promise<GPUComputePipeline> {
  try {
    return await device.createComputePipelineAsync({ label: `${file}:${entryPoint}`, layout: 'auto', compute: { module, entryPoint } });
  } catch (err) {
    const message = ((err as Error).message ?? String(err)).split('\n')[0];
    throw new Error(`cannot create pipeline ${entryPoint} from ${file}: ${message}`);
  }
}
