import ivm from "isolated-vm";
import { type CompiledProgram, compileProgram } from "./compile.ts";
import { GUEST_RUNTIME_SOURCE, type GuestConfig } from "./guest-runtime.ts";
import { type Limits, resolveLimits } from "./limits.ts";
import { INTERNAL_PREFIX, mapStack } from "./stack.ts";
import { keyMatchesArguments, STEP_HASHER_SOURCE } from "./step-key.ts";

/** One tool call as the program made it, addressed by the identifiers it used. */
export interface ToolCall {
  readonly namespace: string;
  readonly method: string;
  readonly args: unknown;
  /** Aborted when the run ends (however it ends) before this call settles. */
  readonly signal: AbortSignal;
  /** 0-based, in the order the program started its calls. */
  readonly index: number;
  /**
   * With `durable`, the call's step key: `namespace.method:<hash of canonical args>#<n>`, where
   * n counts earlier calls with the same method and arguments in this run. Calls are made in
   * program order, even under `Promise.all`, so a re-run of the program derives the same keys.
   */
  readonly key?: string;
}

/**
 * Executes a tool call on the host. A thrown error becomes a catchable `ToolError` in the
 * program, carrying `server`, `tool` and `code` when the thrown error has them.
 */
export type ToolInvoker = (call: ToolCall) => Promise<unknown>;

export type LogLevel = "log" | "info" | "warn" | "error" | "debug";

export interface LogEntry {
  readonly level: LogLevel;
  readonly message: string;
  /** Milliseconds since the run started. */
  readonly at: number;
}

export interface RunOptions {
  /** The job's JSON input, the program's global `input`. */
  input?: unknown;
  /** Namespace identifier → method identifiers, as the program sees them. */
  namespaces?: Readonly<Record<string, readonly string[]>>;
  /**
   * Namespace identifier → a server that could not be reached: every method of its namespace
   * rejects with a ToolError coded `server_unavailable` carrying `message` (see guest-runtime).
   */
  unavailable?: Readonly<Record<string, { server: string; message: string }>>;
  invoke?: ToolInvoker;
  limits?: Partial<Limits>;
  /** Aborting it stops the run promptly: the isolate is disposed, tool calls are aborted. */
  signal?: AbortSignal;
  /**
   * Epoch ms at which the run is stopped as a timeout even if `timeoutMs` has not passed since
   * it started: a job's deadline, counted from before the run (while its servers started).
   */
  deadline?: number;
  /** Name the program's errors are reported against. */
  filename?: string;
  /**
   * Gives every tool call a step key (`ToolCall.key`). `replay` is JSON text of an object from
   * step keys to results: a call whose key is there is answered inside the isolate, without a
   * host round trip, and its key reported in `replayed`.
   */
  durable?: { replay?: string };
  /**
   * Told, while the program runs, how many of its calls so far were answered from
   * `durable.replay` (a count that only grows): each time the program next sends calls out, so
   * it costs no crossing of its own. `RunResult.replayed` has them all at the end.
   */
  onReplayed?: (count: number) => void;
  /** Called for each console line as it happens (logs are also in the result). */
  onLog?: (entry: LogEntry) => void;
}

export type RunErrorCode =
  | "invalid_options"
  | "compile_error"
  | "runtime_error"
  | "tool_error"
  | "limit_exceeded"
  | "result_error"
  | "timeout"
  | "cpu_limit"
  | "memory_limit"
  | "cancelled"
  | "internal_error";

export interface RunError {
  readonly code: RunErrorCode;
  readonly name: string;
  readonly message: string;
  /** Position in the submitted TypeScript, when the error has one. */
  readonly line: number | null;
  readonly column: number | null;
  readonly stack?: string;
  readonly server?: string;
  readonly tool?: string;
}

export interface RunStats {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly toolCalls: number;
  /**
   * Largest V8 heap (plus external memory) seen; sampled every 50 ms, so an approximation (0 for
   * a run that ends before the first sample).
   */
  readonly heapPeakBytes: number;
}

interface RunOutcomeBase {
  readonly logs: LogEntry[];
  /** Step keys answered from `durable.replay`, in call order. */
  readonly replayed: string[];
  readonly stats: RunStats;
}
export type RunResult =
  | (RunOutcomeBase & { readonly ok: true; readonly result: unknown })
  | (RunOutcomeBase & { readonly ok: false; readonly error: RunError });

const SCRIPT_URL = `${INTERNAL_PREFIX}program.js`;
/** Where V8's message puts a SyntaxError in the program: `… [file:///…/program.js:2:3]`. */
const SYNTAX_AT = new RegExp(
  `\\[${SCRIPT_URL.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:(\\d+):(\\d+)\\]$`,
);
/** How esbuild prints the first line of the wrapper the program is compiled in (compile.ts). */
const WRAPPER_START = "(async function() {";
const RUNTIME_URL = `${INTERNAL_PREFIX}runtime.js`;
const ISOLATE_BOUNDARY = /\n\s+at \(?<isolated-vm boundary>/;
const WATCH_INTERVAL_MS = 10;
/**
 * Why calls still in flight are aborted: the run is over. One shared reason, because aborting
 * without one makes a DOMException, with a captured stack, on every run.
 */
const RUN_OVER = Object.freeze(new Error("The run is over"));
/** A batch of replies stops growing past this many characters; the rest go in the next. */
const MAX_REPLY_BATCH_CHARS = 4 * 1024 * 1024;
/** Namespace and method identifiers, a hash and a count fit well within this. */
const MAX_KEY_LENGTH = 1024;
/** Heap statistics need the isolate's lock; sampling every 50 ms is plenty for a peak. */
const HEAP_SAMPLE_EVERY = 5;
const MIB = 1024 * 1024;
const LOG_LEVELS: ReadonlySet<string> = new Set(["log", "info", "warn", "error", "debug"]);
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
  const finish = (outcome: { ok: true; result: unknown } | { ok: false; error: RunError }) => {
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

interface MethodRef {
  readonly namespace: string;
  readonly method: string;
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

function failure(
  code: RunErrorCode,
  message: string,
  name = "Error",
  at: { line: number; column: number } | null = null,
) {
  return {
    ok: false as const,
    error: { code, name, message, line: at?.line ?? null, column: at?.column ?? null },
  };
}

interface MutableStats {
  cpuMs: number;
  toolCalls: number;
  heapPeakBytes: number;
}

interface ExecutionInit {
  program: CompiledProgram;
  configJson: string;
  methods: readonly MethodRef[];
  replayed: string[];
  limits: Limits;
  options: RunOptions;
  logs: LogEntry[];
  stats: MutableStats;
  startedAt: number;
}

/** The lifetime of one isolate: created, run once, disposed. */
class Execution {
  private readonly isolate: ivm.Isolate;
  private readonly calls = new AbortController();
  private killedFor: RunErrorCode | null = null;
  private logBytes = 0;
  private inFlight = 0;
  private heapRequest = false;
  /** Resolves once kill() has disposed the isolate. */
  private readonly killed: Promise<undefined>;
  private markKilled: () => void = () => {};
  private runStartedAt = 0;
  private logLinesReceived = 0;
  private ticks = 0;
  private watchdog: NodeJS.Timeout | undefined;
  /** Replies not yet handed to the guest, each `[slot,ok,json]`. */
  private outbox: string[] = [];
  /** The guest runtime's entry point: replies go in through it. */
  private entry: ivm.Reference | undefined;
  private flushQueued = false;
  /** Set when the run has ended: later replies are dropped. */
  private over = false;

  private readonly program: CompiledProgram;
  private readonly configJson: string;
  private readonly methods: readonly MethodRef[];
  private readonly replayed: string[];
  private readonly limits: Limits;
  private readonly options: RunOptions;
  private readonly logs: LogEntry[];
  private readonly stats: MutableStats;
  private readonly startedAt: number;

  constructor(init: ExecutionInit) {
    this.program = init.program;
    this.configJson = init.configJson;
    this.methods = init.methods;
    this.replayed = init.replayed;
    this.limits = init.limits;
    this.options = init.options;
    this.logs = init.logs;
    this.stats = init.stats;
    this.startedAt = init.startedAt;
    this.isolate = new ivm.Isolate({ memoryLimit: init.limits.memoryMb });
    this.killed = new Promise((resolve) => {
      this.markKilled = () => resolve(undefined);
    });
  }

  async run(filename: string) {
    const { isolate, limits } = this;
    const hostCall = new ivm.Reference(this.handleCalls);
    const hostLog = new ivm.Callback(this.handleLog, { ignored: true });
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
      this.entry = entry;
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
      if (typeof reply === "string" && this.logLinesReceived < sentLogLines(reply)) {
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      thrown = error;
    } finally {
      clearTimeout(this.watchdog);
      this.over = true;
      this.outbox = [];
      this.entry?.release();
      this.options.signal?.removeEventListener("abort", onAbort);
      this.calls.abort(RUN_OVER);
      this.sampleFinalStats();
      hostCall.release();
      if (!isolate.isDisposed) isolate.dispose();
    }
    if (this.killedFor !== null) {
      return failure(
        this.killedFor,
        killMessage(this.killedFor, limits),
        KILL_NAMES[this.killedFor],
      );
    }
    if (reply === undefined) return this.describeHostFailure(thrown, filename, evaluating);
    // The reply is the program's to forge (a Promise species it poisoned can stand in for the
    // runtime's last promise and settle with anything): whatever arrives, runProgram must not
    // throw.
    try {
      if (typeof reply !== "string") throw new TypeError(`it is ${typeof reply}, not a string`);
      return this.decodeReply(reply, filename);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return failure(
        "result_error",
        `The program's reply could not be read (${reason})`,
        "ResultError",
      );
    }
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

  /** The guest's one way out: the calls it starts, one per line (see the guest runtime). */
  private readonly handleCalls = (batch: unknown): void => {
    if (typeof batch === "string" && !this.over) this.startCalls(batch);
  };

  private startCalls(batch: string) {
    let at = 0;
    while (at < batch.length) {
      let end = batch.indexOf("\n", at);
      if (end < 0) end = batch.length;
      const tab = batch.indexOf("\t", at);
      if (tab < 0 || tab > end) break;
      const head = batch.slice(at, tab);
      if (head === "r") {
        const count = Number(batch.slice(tab + 1, end));
        if (Number.isSafeInteger(count) && count > 0) this.options.onReplayed?.(count);
      } else {
        const [slot, id, key] = head.split(",");
        this.startCall(Number(slot), Number(id), key ?? "", batch.slice(tab + 1, end));
      }
      at = end + 1;
    }
  }

  private startCall(slot: number, id: number, key: string, json: string) {
    if (!Number.isSafeInteger(slot) || slot < 0) return;
    const target = this.methods[id];
    if (target === undefined) {
      return this.reply(slot, 0, toolFailure("a tool call must name a method of this run", "", ""));
    }
    const durable = this.options.durable !== undefined;
    if (durable && (key === "" || key.length > MAX_KEY_LENGTH)) {
      return this.reply(
        slot,
        0,
        toolFailure("a durable tool call must carry its step key", "", ""),
      );
    }
    const { limits, options } = this;
    const { namespace, method } = target;
    // The guest runtime checks these first for a precise error; this is the check that holds.
    if (json.length * 3 > limits.maxArgBytes && Buffer.byteLength(json) > limits.maxArgBytes) {
      return this.reply(
        slot,
        0,
        limitFailure(
          `${namespace}.${method}(): its argument is over ${limits.maxArgBytes} bytes (maxArgBytes)`,
          "maxArgBytes",
        ),
      );
    }
    if (this.stats.toolCalls >= limits.maxToolCalls) {
      return this.reply(
        slot,
        0,
        limitFailure(
          `the program already made ${limits.maxToolCalls} tool calls (maxToolCalls)`,
          "maxToolCalls",
        ),
      );
    }
    if (this.inFlight >= limits.maxConcurrentCalls) {
      return this.reply(
        slot,
        0,
        limitFailure(
          `${limits.maxConcurrentCalls} tool calls are already in flight (maxConcurrentCalls)`,
          "maxConcurrentCalls",
        ),
      );
    }
    const invoke = options.invoke;
    if (invoke === undefined) {
      return this.reply(slot, 0, toolFailure("this run has no tools", namespace, method));
    }
    let args: unknown;
    try {
      args = JSON.parse(json);
    } catch {
      return this.reply(
        slot,
        0,
        toolFailure("a tool call's arguments must be JSON", namespace, method),
      );
    }
    // The key finds checkpoints and approvals: it must name these arguments, the ones the tool
    // is given. The guest runtime makes it so; a key that does not is refused, not trusted.
    if (durable && !keyMatchesArguments(key, `${namespace}.${method}`, args)) {
      return this.reply(
        slot,
        0,
        toolFailure(
          `${namespace}.${method}(): its step key does not match its arguments`,
          namespace,
          method,
        ),
      );
    }
    const index = this.stats.toolCalls++;
    this.inFlight++;
    let pending: Promise<unknown>;
    try {
      pending = invoke({
        namespace,
        method,
        args,
        signal: this.calls.signal,
        index,
        ...(durable ? { key } : {}),
      });
    } catch (error) {
      this.inFlight--;
      return this.reply(slot, 0, encodeToolError(error, target));
    }
    // Neither handler may throw: nothing awaits this chain, and an unhandled rejection ends
    // a Node process by default. Every call is answered, whatever the tool handed back.
    pending.then(
      (value) => {
        this.inFlight--;
        this.replyWithResult(slot, value, target);
      },
      (error: unknown) => {
        this.inFlight--;
        this.reply(slot, 0, encodeToolError(error, target));
      },
    );
  }

  private replyWithResult(slot: number, value: unknown, target: MethodRef) {
    const { namespace, method } = target;
    let out: string | undefined;
    try {
      out = JSON.stringify(value === undefined ? null : value);
      if (typeof out !== "string") throw new TypeError(`it is ${typeof value}`);
    } catch (error) {
      // Thrown from here, the host's TypeError (host stack and all) would reach the program.
      const reason = error instanceof Error ? error.message : "it cannot be serialized";
      return this.reply(
        slot,
        0,
        encodeToolError(
          new Error(`${namespace}.${method}() returned a value that is not JSON: ${reason}`),
          target,
        ),
      );
    }
    if (out.length > this.limits.maxToolResultBytes) {
      return this.reply(
        slot,
        0,
        limitFailure(
          `${namespace}.${method}() returned ${out.length} bytes, over the ${this.limits.maxToolResultBytes}-byte limit (maxToolResultBytes)`,
          "maxToolResultBytes",
        ),
      );
    }
    this.reply(slot, 1, out);
  }

  /** Queues a call's reply (ok: 1 a value, 0 an error) for the guest. */
  private reply(slot: number, ok: 0 | 1, json: string) {
    if (this.over) return;
    this.outbox.push(`[${slot},${ok},${json}]`);
    if (this.flushQueued) return;
    // The last call out answers at once; otherwise replies that settle in this same turn (a
    // `Promise.all` of fast tools) go together, a microtask later.
    if (this.inFlight === 0) return this.flushReplies();
    this.flushQueued = true;
    queueMicrotask(this.flushReplies);
  }

  /** Hands the guest every reply that is ready, in messages it parses in one go each. */
  private readonly flushReplies = () => {
    this.flushQueued = false;
    const { outbox, entry } = this;
    this.outbox = [];
    if (this.over || entry === undefined) return;
    let from = 0;
    while (from < outbox.length) {
      let to = from;
      let chars = 0;
      while (to < outbox.length && (to === from || chars < MAX_REPLY_BATCH_CHARS)) {
        chars += (outbox[to] as string).length + 1;
        to++;
      }
      const batch = from === 0 && to === outbox.length ? outbox : outbox.slice(from, to);
      try {
        entry.applyIgnored(undefined, [`[${batch.join(",")}]`]);
      } catch {
        return; // the isolate is gone: the run is over
      }
      from = to;
    }
  };

  private readonly handleLog = (level: unknown, text: unknown) => {
    this.logLinesReceived++;
    if (typeof level !== "string" || !LOG_LEVELS.has(level) || typeof text !== "string") return;
    // The guest cuts at maxLogBytes and adds one marker line; this bound holds whatever it does.
    const bytes = Buffer.byteLength(text) + 1;
    if (this.logBytes + bytes > this.limits.maxLogBytes + 1024) return;
    this.logBytes += bytes;
    const entry: LogEntry = {
      level: level as LogLevel,
      message: text,
      at: Math.round(performance.now() - this.startedAt),
    };
    this.logs.push(entry);
    this.options.onLog?.(entry);
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
    this.calls.abort(RUN_OVER);
    this.isolate.dispose();
    this.markKilled();
  }

  private describeHostFailure(thrown: unknown, filename: string, evaluating: boolean) {
    const message = thrown instanceof Error ? thrown.message : String(thrown);
    if (/memory limit/i.test(message)) {
      return failure("memory_limit", killMessage("memory_limit", this.limits), "MemoryLimitError");
    }
    const name = thrown instanceof Error ? thrown.name : "Error";
    // isolated-vm appends the host's own frames after a boundary line: never hand those out.
    const stack = thrown instanceof Error ? thrown.stack?.split(ISOLATE_BOUNDARY)[0] : undefined;
    const mapped = mapStack(stack, this.program, SCRIPT_URL, filename);
    // A failure to set the isolate up, a SyntaxError the transform let through, or a throw
    // while installing the runtime: no frame of the program's (it cannot run before that).
    // V8 refusing the program's own syntax (a `with` statement in strict code) names its place.
    const where = name === "SyntaxError" ? SYNTAX_AT.exec(message) : null;
    const at = where === null ? null : this.program.toSource(Number(where[1]), Number(where[2]));
    if (at !== null) {
      return failure("compile_error", message.replace(SYNTAX_AT, "").trimEnd(), "CompileError", at);
    }
    const ours = mapped.line === null && (name === "SyntaxError" || stack?.includes(RUNTIME_URL));
    if (!evaluating || ours) {
      return {
        ok: false as const,
        error: { code: "internal_error" as const, name, message, line: null, column: null },
      };
    }
    // Otherwise it is a rejection the program left unhandled: isolated-vm ends the evaluation
    // with one still unhandled at the end of the first task (the program's synchronous start
    // and the microtasks after it), in place of the result. It never reports one left
    // unhandled later, after the program has awaited a tool call.
    const error: RunError = {
      code: errorCode(name),
      name,
      message: `Unhandled promise rejection: ${message}`,
      line: mapped.line,
      column: mapped.column,
      ...(mapped.stack === undefined ? {} : { stack: mapped.stack }),
    };
    return { ok: false as const, error };
  }

  private decodeReply(envelope: string, filename: string) {
    // "<R|E>[replayed keys, log lines sent]\0<body>": the head comes first, whatever the outcome.
    const split = envelope.indexOf("\0");
    // A program can make the runtime's head say anything (an Array.prototype.toJSON, say). A true
    // one lists each replayed key once, every one from the replay table, so it is never longer
    // than that table: a longer head is not read, and no key is taken twice.
    const headText = envelope.slice(1, split);
    const bound = (this.options.durable?.replay?.length ?? 0) + 64;
    const head = headText.length <= bound ? (JSON.parse(headText) as unknown) : null;
    const replayed = Array.isArray(head) ? head[0] : undefined;
    if (Array.isArray(replayed)) {
      const seen = new Set<string>();
      for (const key of replayed) {
        if (typeof key !== "string" || key.length > MAX_KEY_LENGTH || seen.has(key)) continue;
        seen.add(key);
        this.replayed.push(key);
      }
    }
    const reply = envelope[0] + envelope.slice(split + 1);
    if (Buffer.byteLength(reply) > this.limits.maxResultBytes + 64 * 1024) {
      return failure(
        "result_error",
        `The program's result is over ${this.limits.maxResultBytes} bytes (maxResultBytes)`,
        "ResultError",
      );
    }
    const body = JSON.parse(reply.slice(1)) as unknown;
    if (reply[0] === "R") return { ok: true as const, result: body };
    const thrown = body as {
      name: string;
      message: string;
      stack?: string;
      server?: string;
      tool?: string;
      code?: string;
    };
    const mapped = mapStack(thrown.stack, this.program, SCRIPT_URL, filename);
    const code = errorCode(thrown.name);
    const error: RunError = {
      code,
      name: thrown.name,
      message: thrown.message,
      line: mapped.line,
      column: mapped.column,
      ...(mapped.stack === undefined ? {} : { stack: mapped.stack }),
      ...(code === "tool_error" ? { server: thrown.server, tool: thrown.tool } : {}),
    };
    return { ok: false as const, error };
  }
}

/** The code of an error the program threw (or left unhandled), by its name. */
function errorCode(name: string): RunErrorCode {
  if (name === "ToolError") return "tool_error";
  if (name === "LimitError") return "limit_exceeded";
  if (name === "ResultError") return "result_error";
  return "runtime_error";
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

function encodeToolError(error: unknown, { namespace, method }: MethodRef): string {
  try {
    const detail = error as { message?: unknown; server?: unknown; tool?: unknown; code?: unknown };
    return JSON.stringify({
      name: "ToolError",
      message: typeof detail?.message === "string" ? detail.message : String(error),
      server: typeof detail?.server === "string" ? detail.server : namespace,
      tool: typeof detail?.tool === "string" ? detail.tool : method,
      code: typeof detail?.code === "string" ? detail.code : "tool_error",
    });
  } catch {
    // An error whose properties throw, or that has no way to become a string.
    return toolFailure(
      `${namespace}.${method}() failed with an unreadable error`,
      namespace,
      method,
    );
  }
}

/** The number of console lines the guest says it sent, from the reply's head. */
function sentLogLines(envelope: string): number {
  const split = envelope.indexOf("\0");
  if (split < 0) return Number.POSITIVE_INFINITY;
  const head = envelope.slice(envelope.lastIndexOf(",", split) + 1, split - 1);
  const count = Number(head);
  return Number.isSafeInteger(count) ? count : Number.POSITIVE_INFINITY;
}

function toolFailure(message: string, namespace: unknown, method: unknown): string {
  return JSON.stringify({
    name: "ToolError",
    message,
    server: String(namespace),
    tool: String(method),
    code: "tool_error",
  });
}

function limitFailure(message: string, limit: string): string {
  return JSON.stringify({ name: "LimitError", message, limit });
}

const KILL_NAMES: Partial<Record<RunErrorCode, string>> = {
  timeout: "TimeoutError",
  cpu_limit: "CpuLimitError",
  memory_limit: "MemoryLimitError",
  cancelled: "CancelledError",
};

function killMessage(reason: RunErrorCode, limits: Limits): string {
  switch (reason) {
    case "timeout":
      return `The program ran past its ${limits.timeoutMs} ms deadline (timeoutMs) and was stopped`;
    case "cpu_limit":
      return `The program used more than ${limits.cpuMs} ms of CPU (cpuMs) and was stopped`;
    case "memory_limit":
      return `The program used more than ${limits.memoryMb} MB of memory (memoryMb) and was stopped`;
    case "cancelled":
      return "The run was cancelled";
    default:
      return "The run was stopped";
  }
}
