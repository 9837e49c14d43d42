import { expect } from "vitest";
import {
  type RunError,
  type RunErrorCode,
  type RunOptions,
  type RunResult,
  runProgram,
  type ToolCall,
  type ToolInvoker,
} from "../src/index.ts";

/** What a test's in-process tool host saw of one `tools.slow` / `tools.stubborn` call. */
export interface SlowCall {
  readonly call: ToolCall;
  /** Settles when the tool does: "done" after its delay, "aborted" when its signal stopped it. */
  readonly settled: Promise<"done" | "aborted">;
}

export interface ToolHost {
  readonly namespaces: { readonly tools: readonly string[] };
  readonly invoke: ToolInvoker;
  readonly calls: ToolCall[];
  readonly slowCalls: SlowCall[];
  /** Resolves with the next `slow`/`stubborn` call as soon as the tool starts it. */
  nextSlowCall(): Promise<SlowCall>;
}

/**
 * An in-process tool host with one namespace, `tools`:
 * - `echo(args)` returns its argument;
 * - `slow({ ms })` resolves after `ms` unless the call's AbortSignal fires first;
 * - `stubborn({ ms })` ignores the signal and resolves after `ms` whatever happens;
 * - `fail()` throws an error with a `code`, which the program sees as a ToolError;
 * - `bigint()` returns a value JSON cannot represent (a broken tool, not a hostile program).
 */
export function createToolHost(): ToolHost {
  const calls: ToolCall[] = [];
  const slowCalls: SlowCall[] = [];
  const waiters: Array<(call: SlowCall) => void> = [];

  const delay = (call: ToolCall, heedSignal: boolean): Promise<"done" | "aborted"> => {
    const ms = (call.args as { ms?: number }).ms ?? 10;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve("done"), ms);
      if (!heedSignal) return;
      const stop = () => {
        clearTimeout(timer);
        resolve("aborted");
      };
      if (call.signal.aborted) stop();
      else call.signal.addEventListener("abort", stop, { once: true });
    });
  };

  const invoke: ToolInvoker = async (call) => {
    calls.push(call);
    switch (call.method) {
      case "echo":
        return call.args;
      case "fail":
        throw Object.assign(new Error("the tool failed on purpose"), { code: "deliberate" });
      case "bigint":
        return { n: 10n };
      case "slow":
      case "stubborn": {
        const settled = delay(call, call.method === "slow");
        const slow: SlowCall = { call, settled };
        slowCalls.push(slow);
        for (const wake of waiters.splice(0)) wake(slow);
        const outcome = await settled;
        if (outcome === "aborted") throw new Error("aborted");
        return { slept: (call.args as { ms?: number }).ms ?? 10 };
      }
      default:
        throw new Error(`no tool ${call.method}`);
    }
  };

  return {
    namespaces: { tools: ["echo", "slow", "stubborn", "fail", "bigint"] },
    invoke,
    calls,
    slowCalls,
    nextSlowCall: () => new Promise((resolve) => waiters.push(resolve)),
  };
}

/** Runs `code` against `host`'s tools; `options` may override anything. */
export function runWith(
  host: ToolHost,
  code: string,
  options: RunOptions = {},
): Promise<RunResult> {
  return runProgram(code, { namespaces: host.namespaces, invoke: host.invoke, ...options });
}

/**
 * A normal program (arithmetic plus one tool call) in a fresh run, on a fresh tool host: it must
 * still succeed after whatever the previous test threw at the sandbox.
 */
export async function expectHostHealthy(): Promise<void> {
  const host = createToolHost();
  const run = await runWith(
    host,
    "const echoed = await tools.echo({ ping: 1 });\nreturn { sum: 1 + 1, echoed };",
  );
  expect(run).toMatchObject({ ok: true, result: { sum: 2, echoed: { ping: 1 } } });
  expect(host.calls).toHaveLength(1);
}

export interface ExpectedError {
  code: RunErrorCode;
  name?: string;
  /** A fragment the message must contain, or a pattern it must match. */
  message?: string | RegExp;
  /** `null` asserts the error has no location. */
  line?: number | null;
  column?: number | null;
}

/** Asserts the run failed as expected and returns its error for further checks. */
export function expectFailure(run: RunResult, expected: ExpectedError): RunError {
  if (run.ok) {
    expect.fail(
      `expected the run to fail with ${expected.code}, it returned ${JSON.stringify(run.result)}`,
    );
  }
  const { error } = run;
  expect(error.code, `${error.code}: ${error.message}`).toBe(expected.code);
  if (expected.name !== undefined) expect(error.name).toBe(expected.name);
  if (typeof expected.message === "string") expect(error.message).toContain(expected.message);
  if (expected.message instanceof RegExp) expect(error.message).toMatch(expected.message);
  if (expected.line !== undefined) expect(error.line).toBe(expected.line);
  if (expected.column !== undefined) expect(error.column).toBe(expected.column);
  return error;
}

/** Asserts the run succeeded and returns its result. */
export function expectSuccess(run: RunResult): unknown {
  if (!run.ok) expect.fail(`expected success, got ${run.error.code}: ${run.error.message}`);
  return run.result;
}

/**
 * Samples the host's resident memory while `work` runs (isolated-vm runs the isolate on its own
 * thread, so the host's timers keep firing) and returns the largest figure seen, in bytes.
 */
export async function peakRssDuring<T>(work: () => Promise<T>): Promise<{ value: T; rss: number }> {
  let rss = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    rss = Math.max(rss, process.memoryUsage.rss());
  }, 5);
  try {
    const value = await work();
    rss = Math.max(rss, process.memoryUsage.rss());
    return { value, rss };
  } finally {
    clearInterval(sampler);
  }
}
