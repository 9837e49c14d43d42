/**
 * Every resource a program may use is capped. The defaults suit an LLM-written program that fans
 * out over a few thousand tool calls; callers (the CLI, the worker) may tighten or relax each one.
 */
export interface Limits {
  /** V8 heap limit of the isolate, in MiB. */
  memoryMb: number;
  /** Wall-clock deadline for the whole run, in ms (waiting on tools included). */
  timeoutMs: number;
  /** CPU time the isolate may burn, in ms (waiting on tools excluded). */
  cpuMs: number;
  /** Bytes of console output kept; the rest is dropped with a marker. */
  maxLogBytes: number;
  /** Bytes of the program's JSON result. */
  maxResultBytes: number;
  /** Bytes of one tool call's JSON arguments. */
  maxArgBytes: number;
  /** Bytes of one tool result handed into the isolate. */
  maxToolResultBytes: number;
  /** Tool calls started but not yet settled. */
  maxConcurrentCalls: number;
  /** Tool calls in the whole run. */
  maxToolCalls: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  memoryMb: 128,
  timeoutMs: 60_000,
  cpuMs: 30_000,
  maxLogBytes: 256 * 1024,
  maxResultBytes: 4 * 1024 * 1024,
  maxArgBytes: 1024 * 1024,
  maxToolResultBytes: 8 * 1024 * 1024,
  maxConcurrentCalls: 10_000,
  maxToolCalls: 100_000,
});

const MINIMUMS: Readonly<Limits> = Object.freeze({
  memoryMb: 8,
  timeoutMs: 1,
  cpuMs: 1,
  maxLogBytes: 0,
  maxResultBytes: 16,
  maxArgBytes: 16,
  maxToolResultBytes: 16,
  maxConcurrentCalls: 1,
  maxToolCalls: 0,
});

/** Merges overrides into the defaults; returns a message naming the first bad field instead. */
export function resolveLimits(overrides: Partial<Limits> = {}): Limits | string {
  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(overrides) as Array<keyof Limits>) {
    const value = overrides[key];
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) return `unknown limit "${String(key)}"`;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < MINIMUMS[key]) {
      return `limit ${key} must be an integer ≥ ${MINIMUMS[key]}, got ${String(value)}`;
    }
    limits[key] = value;
  }
  return limits;
}
