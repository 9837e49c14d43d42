/**
 * The host's side of the exchange with the guest runtime, the only traffic across the isolate's
 * boundary while a program runs: the batches of tool calls the guest sends out (and its notices
 * of calls answered from the replay table), each checked against the run's limits, handed to
 * `invoke` and answered in batches of replies; and the console lines it sends, kept within
 * `maxLogBytes`. The guest's half, and the format of both directions, is in guest-runtime.ts.
 */
import type ivm from "isolated-vm";
import type { Limits } from "./limits.ts";
import { keyMatchesArguments, MAX_KEY_LENGTH } from "./step-key.ts";
import type { LogEntry, LogLevel, RunOptions } from "./types.ts";

/**
 * Why calls still in flight are aborted: the run is over. One shared reason, because aborting
 * without one makes a DOMException, with a captured stack, on every run.
 */
const RUN_OVER = Object.freeze(new Error("The run is over"));
/** A batch of replies stops growing past this many characters; the rest go in the next. */
const MAX_REPLY_BATCH_CHARS = 4 * 1024 * 1024;
const LOG_LEVELS: ReadonlySet<string> = new Set(["log", "info", "warn", "error", "debug"]);

export interface MethodRef {
  readonly namespace: string;
  readonly method: string;
}

export interface ExchangeInit {
  /** Methods by the id the guest calls them with: their order in the guest's config. */
  readonly methods: readonly MethodRef[];
  readonly limits: Limits;
  readonly options: RunOptions;
  /** Where console lines are kept. */
  readonly logs: LogEntry[];
  /** Counts the calls handed to `invoke`. */
  readonly stats: { toolCalls: number };
  /** When the run started, which console lines are timed from. */
  readonly startedAt: number;
}

/** One run's calls and console lines, from the guest's first call to the end of the run. */
export class CallExchange {
  private readonly calls = new AbortController();
  private logBytes = 0;
  private inFlight = 0;
  private linesReceived = 0;
  /** Replies not yet handed to the guest, each `[slot,ok,json]`. */
  private outbox: string[] = [];
  /** The guest runtime's entry point: replies go in through it. */
  private entry: ivm.Reference | undefined;
  private flushQueued = false;
  /** Set when the run has ended: later replies are dropped. */
  private over = false;

  private readonly methods: readonly MethodRef[];
  private readonly limits: Limits;
  private readonly options: RunOptions;
  private readonly logs: LogEntry[];
  private readonly stats: { toolCalls: number };
  private readonly startedAt: number;

  constructor(init: ExchangeInit) {
    this.methods = init.methods;
    this.limits = init.limits;
    this.options = init.options;
    this.logs = init.logs;
    this.stats = init.stats;
    this.startedAt = init.startedAt;
  }

  /** Console lines the guest has sent so far, counted whether or not they were kept. */
  get logLinesReceived(): number {
    return this.linesReceived;
  }

  /** Replies go to the guest through its runtime's entry point, once the runtime is set up. */
  connect(entry: ivm.Reference) {
    this.entry = entry;
  }

  /** The run has ended: replies not yet handed over, and any that settle later, are dropped. */
  close() {
    this.over = true;
    this.outbox = [];
    this.entry?.release();
  }

  /** Aborts the calls still in flight: the run is over. */
  abortCalls() {
    this.calls.abort(RUN_OVER);
  }

  /** The guest's one way out: the calls it starts, one per line (see the guest runtime). */
  readonly handleCalls = (batch: unknown): void => {
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

  readonly handleLog = (level: unknown, text: unknown) => {
    this.linesReceived++;
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
