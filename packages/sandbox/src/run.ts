/**
 * Runs one program: checks the options, compiles the TypeScript and takes one isolate through its
 * life (created under its memory limit, the guest runtime installed from V8's code cache, the
 * program evaluated while a watchdog holds it to its deadline and CPU budget, then disposed).
 * What crosses the boundary while the program runs is handled in exchange.ts; how the run ended
 * becomes its result in outcome.ts; what callers see is in types.ts.
 */
import ivm from "isolated-vm";
import { type CompiledProgram, compileProgram } from "./compile.ts";
import { CallExchange, type ExchangeInit, type MethodRef } from "./exchange.ts";
import { GUEST_RUNTIME_SOURCE, type GuestConfig } from "./guest-runtime.ts";
import { type Limits, resolveLimits } from "./limits.ts";
import { decodeOutcome, failure, type Outcome, sentLogLines } from "./outcome.ts";
import { RUNTIME_URL, SCRIPT_URL } from "./stack.ts";
import { STEP_HASHER_SOURCE } from "./step-key.ts";
import type { LogEntry, RunErrorCode, RunOptions, RunResult } from "./types.ts";

/** How esbuild prints the first line of the wrapper the program is compiled in (compile.ts). */
const WRAPPER_START = "(async function() {";
const WATCH_INTERVAL_MS = 10;
/** Heap statistics need the isolate's lock; sampling every 50 ms is plenty for a peak. */
const HEAP_SAMPLE_EVERY = 5;
const MIB = 1024 * 1024;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const TAKEN_GLOBALS: ReadonlySet<string> = new Set(["input", "console", "ToolError", "globalThis"]);

let isolateGlobals: ReadonlySet<string> | undefined;

/**
 * Every name a program's global scope already has in an isolate: its globals and what the global
 * object inherits (`toString`…). Read once from a fresh context, not from this process's own
 * globalThis: Node's (`fetch`, `process`, `Buffer`…) are not in the sandbox, and a namespace
 * named like one (a server called `fetch`) is a namespace like any other there.
 */
export function isolateGlobalNames(): ReadonlySet<string> {
  if (isolateGlobals) return isolateGlobals;
  const isolate = new ivm.Isolate({ memoryLimit: 8 });
  try {
    const context = isolate.createContextSync();
    const names = context.evalSync(
      "const names = []; for (let o = globalThis; o; o = Object.getPrototypeOf(o)) names.push(...Object.getOwnPropertyNames(o)); JSON.stringify(names)",
    ) as string;
    isolateGlobals = new Set(JSON.parse(names) as string[]);
    return isolateGlobals;
  } finally {
    isolate.dispose();
  }
}

/**
 * Runs one program in a fresh isolate and disposes it. Never throws: every failure, the
 * program's or the host's, comes back as `{ ok: false, error }`.
 */
export async function runProgram(code: string, options: RunOptions = {}): Promise<RunResult> {
  const startedAt = performance.now();
  const logs: LogEntry[] = [];
  const stats = { wallMs: 0, cpuMs: 0, toolCalls: 0, heapPeakBytes: 0 };
  const replayed: string[] = [];
  const finish = (outcome: Outcome) => {
    stats.wallMs = performance.now() - startedAt;
    return { ...outcome, logs, replayed, stats } as RunResult;
  };

  const limits = resolveLimits(options.limits);
  if (typeof limits === "string") return finish(failure("invalid_options", limits));
  const setup = prepareConfig(options, limits);
  if (typeof setup === "string") return finish(failure("invalid_options", setup));
  if (options.signal?.aborted)
    return finish(failure("cancelled", "The run was cancelled", "CancelledError"));

  const filename = options.filename ?? "program.ts";
  const compiled = await compileProgram(code, filename);
  if (!compiled.ok) {
    const { message, line, column } = compiled.error;
    return finish({
      ok: false,
      error: { code: "compile_error", name: "CompileError", message, line, column },
    });
  }
  const execution = new Execution({
    program: compiled.program,
    configJson: setup.configJson,
    methods: setup.methods,
    limits,
    options,
    logs,
    replayed,
    stats,
    startedAt,
  });
  return finish(await execution.run(filename));
}

interface PreparedConfig {
  /** What the guest runtime installs. */
  readonly configJson: string;
  /** Methods by the id the guest calls them with: their order in the config. */
  readonly methods: readonly MethodRef[];
}

/** The guest's configuration as JSON, or a message saying which option is wrong. */
function prepareConfig(options: RunOptions, limits: Limits): PreparedConfig | string {
  const namespaces: Array<[string, string[]]> = [];
  const methodRefs: MethodRef[] = [];
  for (const [namespace, methods] of Object.entries(options.namespaces ?? {})) {
    if (
      !IDENTIFIER.test(namespace) ||
      TAKEN_GLOBALS.has(namespace) ||
      isolateGlobalNames().has(namespace)
    ) {
      return `namespace "${namespace}" is not a usable global identifier`;
    }
    for (const method of methods) {
      if (!IDENTIFIER.test(method)) return `method "${namespace}.${method}" is not an identifier`;
      methodRefs.push({ namespace, method });
    }
    namespaces.push([namespace, [...methods]]);
  }
  const unavailable: Array<[string, string, string]> = [];
  for (const [namespace, down] of Object.entries(options.unavailable ?? {})) {
    if (
      !IDENTIFIER.test(namespace) ||
      TAKEN_GLOBALS.has(namespace) ||
      isolateGlobalNames().has(namespace) ||
      Object.hasOwn(options.namespaces ?? {}, namespace)
    ) {
      return `unavailable namespace "${namespace}" is not a usable global identifier`;
    }
    unavailable.push([namespace, String(down.server), String(down.message)]);
  }
  if (namespaces.length > 0 && options.invoke === undefined) {
    return "namespaces were given without an invoke function";
  }
  const config: Omit<GuestConfig, "replay"> = {
    input: options.input ?? null,
    namespaces,
    unavailable,
    durable: options.durable !== undefined,
    limits: {
      maxArgBytes: limits.maxArgBytes,
      maxLogBytes: limits.maxLogBytes,
      maxResultBytes: limits.maxResultBytes,
      maxConcurrentCalls: limits.maxConcurrentCalls,
      maxToolCalls: limits.maxToolCalls,
    },
  };
  try {
    // The replay table is spliced in as the text it came as: it can be large, and only the
    // guest needs it parsed.
    const head = JSON.stringify(config).slice(0, -1);
    const replay = options.durable?.replay ?? "null";
    return { configJson: `${head},"replay":${replay}}`, methods: methodRefs };
  } catch (error) {
    return `input is not JSON: ${(error as Error).message}`;
  }
}

interface MutableStats {
  cpuMs: number;
  toolCalls: number;
  heapPeakBytes: number;
}

/** What one isolate's run needs; the call exchange takes its share (methods, logs, startedAt). */
interface ExecutionInit extends ExchangeInit {
  program: CompiledProgram;
  configJson: string;
  replayed: string[];
  stats: MutableStats;
}

/** The lifetime of one isolate: created, run once, disposed. */
class Execution {
  private readonly isolate: ivm.Isolate;
  private readonly exchange: CallExchange;
  private killedFor: RunErrorCode | null = null;
  private heapRequest = false;
  /** Resolves once kill() has disposed the isolate. */
  private readonly killed: Promise<undefined>;
  private markKilled: () => void = () => {};
  private runStartedAt = 0;
  private ticks = 0;
  private watchdog: NodeJS.Timeout | undefined;

  private readonly program: CompiledProgram;
  private readonly configJson: string;
  private readonly replayed: string[];
  private readonly limits: Limits;
  private readonly options: RunOptions;
  private readonly stats: MutableStats;

  constructor(init: ExecutionInit) {
    this.program = init.program;
    this.configJson = init.configJson;
    this.replayed = init.replayed;
    this.limits = init.limits;
    this.options = init.options;
    this.stats = init.stats;
    this.exchange = new CallExchange(init);
    this.isolate = new ivm.Isolate({ memoryLimit: init.limits.memoryMb });
    this.killed = new Promise((resolve) => {
      this.markKilled = () => resolve(undefined);
    });
  }

  async run(filename: string) {
    const { isolate, limits, exchange } = this;
    const hostCall = new ivm.Reference(exchange.handleCalls);
    const hostLog = new ivm.Callback(exchange.handleLog, { ignored: true });
    this.runStartedAt = performance.now();
    this.watchdog = setTimeout(
      this.tick,
      Math.min(WATCH_INTERVAL_MS, limits.timeoutMs, limits.cpuMs),
    );
    const onAbort = () => this.kill("cancelled");
    this.options.signal?.addEventListener("abort", onAbort, { once: true });
    // Aborted while the program compiled (after runProgram's own check): the listener came too
    // late to hear it.
    if (this.options.signal?.aborted) onAbort();

    let reply: string | undefined;
    let thrown: unknown;
    let evaluating = false;
    try {
      const context = isolate.createContextSync();
      const runtime = loadRuntime(isolate).runSync(context, { reference: true });
      const entry = runtime.applySync(undefined, [hostCall, hostLog, this.configJson], {
        result: { reference: true },
      }) as ivm.Reference;
      exchange.connect(entry);
      evaluating = true;
      const evaluation: Promise<string> = (async () =>
        context.evalClosure(closureSource(this.program), [entry], {
          filename: SCRIPT_URL,
          result: { promise: true, copy: true },
        }))();
      // The run ends on the kill, not on isolated-vm's word: now and then (about one dispose in
      // a few hundred, more on a busy machine) it neither stops an isolate spinning in a
      // microtask after a tool call nor settles the evaluation. Its late rejection is dropped.
      evaluation.catch(() => {});
      reply = await Promise.race([evaluation, this.killed]);
      // The reply can overtake the program's last console lines: isolated-vm may deliver it
      // through a task queued before them (when the program settled before that task ran).
      // Those lines are then queued behind it in the batch isolated-vm runs before Node's
      // next phase, so one turn of the event loop lands them. (Without it, a line logged after
      // a tool call was missing from two runs in three.) The reply says how many lines were
      // sent, so a run whose lines are all in skips the turn.
      if (typeof reply === "string" && exchange.logLinesReceived < sentLogLines(reply)) {
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      thrown = error;
    } finally {
      clearTimeout(this.watchdog);
      exchange.close();
      this.options.signal?.removeEventListener("abort", onAbort);
      exchange.abortCalls();
      this.sampleFinalStats();
      hostCall.release();
      if (!isolate.isDisposed) isolate.dispose();
    }
    return decodeOutcome(
      {
        program: this.program,
        filename,
        limits,
        replay: this.options.durable?.replay,
        replayed: this.replayed,
      },
      { killedFor: this.killedFor, reply, thrown, evaluating },
    );
  }

  /**
   * Enforces the deadline and the CPU budget from the host: isolated-vm's own `timeout` covers
   * synchronous code only, and a program can spin after an `await`.
   */
  private readonly tick = () => {
    if (this.isolate.isDisposed) return;
    const { timeoutMs, cpuMs } = this.limits;
    if (performance.now() - this.runStartedAt >= timeoutMs) return this.kill("timeout");
    const { deadline } = this.options;
    if (deadline !== undefined && Date.now() >= deadline) return this.kill("timeout");
    if (this.isolate.cpuTime >= BigInt(cpuMs) * 1_000_000n) return this.kill("cpu_limit");
    if (++this.ticks % HEAP_SAMPLE_EVERY === 0) this.sampleHeap();
    this.watchdog = setTimeout(this.tick, WATCH_INTERVAL_MS);
  };

  private sampleHeap() {
    if (this.heapRequest) return;
    this.heapRequest = true;
    this.isolate.getHeapStatistics().then(
      (heap) => {
        this.heapRequest = false;
        this.recordHeap(heap);
      },
      () => {},
    );
  }

  private recordHeap(heap: ivm.HeapStatistics) {
    const bytes = heap.used_heap_size + heap.externally_allocated_size;
    if (bytes > this.stats.heapPeakBytes) this.stats.heapPeakBytes = bytes;
  }

  private sampleFinalStats() {
    if (this.isolate.isDisposed) {
      if (this.killedFor === "memory_limit" || this.killedFor === null) {
        this.stats.heapPeakBytes = Math.max(this.stats.heapPeakBytes, this.limits.memoryMb * MIB);
      }
      return;
    }
    this.stats.cpuMs = Number(this.isolate.cpuTime) / 1e6;
    // No last heap sample here: it takes the isolate's lock, and the program may still be
    // running after its result came out (a microtask storm it left behind, which dispose()
    // ends). Waiting for the lock blocked the host's thread, and with it every timer, for good.
  }

  private kill(reason: RunErrorCode) {
    if (this.killedFor !== null || this.isolate.isDisposed) return;
    this.killedFor = reason;
    this.stats.cpuMs = Number(this.isolate.cpuTime) / 1e6;
    this.exchange.abortCalls();
    this.isolate.dispose();
    this.markKilled();
  }
}

function closureSource(program: CompiledProgram): string {
  // The prelude shares line 1 with the program's wrapper line, so the program's lines report
  // as they are in `js` (no `lineOffset`: V8 leaves it out of an `eval`'s origin, which then
  // pointed one line below the call). The program's function is built inside a function whose
  // parameter shadows the closure's, so the program cannot name `$0` (the runtime's entry
  // point, whose other callers are the host's replies). The program's expression is evaluated inside `main()`, after the
  // runtime has captured its intrinsics: esbuild's output is one function expression only if
  // the program keeps to its body, and a program that closes the wrapper early
  // (`}, sideEffect(), async function () {`) would otherwise run first, swap `Reflect.apply`
  // and be handed the host reference. The call of the program's function sits on a line past
  // the program's, so stacks drop its frame.
  // Syntax esbuild lowers (`using`, say) brings helpers, printed before the wrapper's line: they
  // stay in the function, before its `return`, on their own lines, so every line keeps its number.
  const js = program.js.endsWith(";") ? program.js.slice(0, -1) : program.js;
  const start = js.startsWith(WRAPPER_START) ? 0 : js.indexOf(`\n${WRAPPER_START}`) + 1;
  const helpers = js.slice(0, start);
  return `"use strict"; return $0.deref()(() => (function ($0) { ${helpers}return ${js.slice(start)}; })()\n());\n`;
}

// Strict: no function of the runtime can be named through a sloppy function's `.caller`. The
// step hasher is made before the program runs, so it keeps the intrinsics it captured.
const RUNTIME_SCRIPT = `"use strict";\n((hostCall, hostLog, configJson) => (${GUEST_RUNTIME_SOURCE})(hostCall, hostLog, configJson, (${STEP_HASHER_SOURCE})()))`;
let runtimeCodeCache: ivm.ExternalCopy<ArrayBuffer> | undefined;

/** The guest runtime, compiled from V8's code cache after the first isolate of the process. */
function loadRuntime(isolate: ivm.Isolate): ivm.Script {
  if (runtimeCodeCache === undefined) {
    const script = isolate.compileScriptSync(RUNTIME_SCRIPT, {
      filename: RUNTIME_URL,
      produceCachedData: true,
    });
    runtimeCodeCache = (script as ivm.Script & ivm.CachedDataResult).cachedData;
    return script;
  }
  const script = isolate.compileScriptSync(RUNTIME_SCRIPT, {
    filename: RUNTIME_URL,
    cachedData: runtimeCodeCache,
  });
  // isolated-vm sets this when V8 refused the cache (another V8 build or flags); not in its types.
  if ((script as ivm.Script & { cachedDataRejected?: boolean }).cachedDataRejected === true) {
    runtimeCodeCache = undefined;
  }
  return script;
}
