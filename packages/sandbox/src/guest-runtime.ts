/**
 * The part of Turtle that runs inside the isolate. `guestRuntime` is never called on the host:
 * its source text (`GUEST_RUNTIME_SOURCE`) is evaluated in each fresh context, before the
 * program's body runs, so it may use nothing from this module's scope.
 *
 * What it guarantees:
 * - The only ways out are `hostCall` (an isolated-vm Reference, applied fire-and-forget, kept in
 *   this closure and never put where guest code can reach it) and `hostLog` (a fire-and-forget
 *   callback). Both take strings only and return nothing.
 * - Intrinsics it relies on are captured before the program runs, and the options it hands to
 *   isolated-vm have no prototype, so a program that pollutes `Object.prototype`, `JSON` or
 *   `Promise` can only confuse itself.
 * - Results, errors and logs leave as strings, size-checked here and again on the host.
 * - Nothing that allocates past the memory limit unseen: no WebAssembly, no resizable buffers.
 *
 * Calls cross the boundary as fire-and-forget messages, batched each way: a call made with none
 * in flight goes out at once, the others a turn of the microtask queue makes in one message of
 * lines `<slot>,<method id>,<step key>\t<JSON arguments>`; the host pushes back the replies that
 * settle together as one JSON array of `[slot, 1, value]` or `[slot, 0, error]`, through the
 * function this one returns. Neither side waits on a promise across the boundary (isolated-vm
 * takes a slow path for a host promise that is still pending when the call returns), so a
 * sequential program pays about a bare Reference's round trip per call, and 10,000 calls in a
 * `Promise.all` pay a handful of messages.
 */
export function guestRuntime(
  hostCall: GuestReference,
  hostLog: (level: string, text: string) => void,
  configJson: string,
  hashArgs: (value: unknown) => string,
): (arg: string | (() => Promise<unknown>)) => Promise<string> | undefined {
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const reflectApply = Reflect.apply;
  const defineProperty = Object.defineProperty;
  const createObject = Object.create;
  const freeze = Object.freeze;
  const isArray = Array.isArray;
  const toStr = String;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const MapCtor = Map;
  const SetCtor = Set;
  const referenceApplyIgnored = hostCall.applyIgnored;
  const PromiseCtor = Promise;
  const stringSlice = String.prototype.slice;
  const promiseThen = Promise.prototype.then;
  // `then` asks a promise's `constructor` for the kind of promise to make, and a program can
  // replace Promise.prototype.constructor (or Promise[Symbol.species]) to make that throw. The
  // runtime's own promises carry a `constructor` of their own with no species, so `then` on them
  // always makes a plain intrinsic promise.
  // The descriptor has no prototype either: it is read while the program runs, and an inherited
  // `get` (Object.prototype.get = …) would make it invalid.
  const shield = createObject(null);
  shield.value = freeze(createObject(null));
  freeze(shield);
  const shielded = <T>(promise: Promise<T>): Promise<T> => {
    defineProperty(promise, "constructor", shield);
    return promise;
  };
  const resolved = shielded(Promise.resolve());
  const ProxyCtor = Proxy;
  const reflectConstruct = Reflect.construct;

  const config = parse(configJson) as GuestConfig;
  const limits = config.limits;

  // A program that swaps prepareStackTrace could make our error report run its code with
  // structured call sites; the default formatting is all the host parses.
  defineProperty(ErrorCtor, "prepareStackTrace", {
    value: undefined,
    writable: false,
    enumerable: false,
    configurable: false,
  });

  class ToolError extends ErrorCtor {
    server: string;
    tool: string;
    code: string;
    constructor(message: string, server: string, tool: string, code: string) {
      super(message);
      this.server = server;
      this.tool = tool;
      this.code = code;
    }
  }
  defineProperty(ToolError.prototype, "name", { value: "ToolError", writable: true });

  class LimitError extends ErrorCtor {
    limit: string;
    constructor(message: string, limit: string) {
      super(message);
      this.limit = limit;
    }
  }
  defineProperty(LimitError.prototype, "name", { value: "LimitError", writable: true });

  const slice = (text: string, end: number): string => reflectApply(stringSlice, text, [0, end]);

  // ---- memory the limit does not see ----------------------------------------------------------

  // isolated-vm's memory limit counts the V8 heap and ArrayBuffers from its allocator. WebAssembly
  // memories and resizable ArrayBuffers (growable SharedArrayBuffers) are committed outside it: a
  // 32 MB isolate committed 3 GB of the host's memory through them. A program that calls tools
  // needs neither. The constructors are swapped for proxies that refuse `maxByteLength` and pass
  // on the length alone (so a getter cannot answer differently the second time); the originals
  // stay unreachable, as `prototype.constructor` points at the proxies too.
  delete (globalThis as Record<string, unknown>).WebAssembly;
  for (const name of ["ArrayBuffer", "SharedArrayBuffer"]) {
    type Constructor = new (...args: unknown[]) => object;
    const Original = (globalThis as Record<string, unknown>)[name] as Constructor;
    const handler = createObject(null);
    handler.construct = (target: Constructor, args: unknown[], newTarget: Constructor) => {
      const options = args[1];
      if (options !== null && typeof options === "object" && "maxByteLength" in options) {
        throw new TypeErrorCtor(
          `resizable ${name}s (maxByteLength) are not available in the sandbox; allocate the full length up front`,
        );
      }
      return reflectConstruct(target, [args[0]], newTarget);
    };
    const slot = {
      value: new ProxyCtor(Original, handler),
      writable: true,
      enumerable: false,
      configurable: true,
    };
    defineProperty(globalThis, name, slot);
    defineProperty(Original.prototype, "constructor", slot);
  }

  // ---- tool calls --------------------------------------------------------------------------

  let started = 0;
  let inFlight = 0;

  function describeType(value: unknown): string {
    if (value === null) return "null";
    if (isArray(value)) return "an array";
    return typeof value;
  }

  // ---- the exchange with the host -----------------------------------------------------------

  // Resolve functions of the calls sent and not yet answered, by slot. No closure per call: a
  // program may have 10,000 calls in flight; one shared executor hands each promise's resolve
  // function over.
  const waiting: Record<number, (box: Reply) => void> = createObject(null);
  let handedOver: ((box: Reply) => void) | undefined;
  const takeResolve = (resolve: (box: Reply) => void) => {
    handedOver = resolve;
  };
  // Calls that wait for the end of the turn, to go out together.
  let outbox = "";
  let flushQueued = false;
  // How many replays the host has been told of. Calls carry the count when it grew (a line
  // `r<TAB>count` first), so watchers see a resumed job's replays as it makes progress at no
  // extra crossing; the final reply lists them all.
  let replaysSent = 0;
  const send = (calls: string) => {
    let batch = calls;
    if (replayed.length > replaysSent) {
      replaysSent = replayed.length;
      batch = `r\t${replaysSent}\n${calls}`;
    }
    reflectApply(referenceApplyIgnored, hostCall, [undefined, [batch]]);
  };
  const flush = () => {
    flushQueued = false;
    if (outbox === "") return;
    const batch = outbox;
    outbox = "";
    send(batch);
  };
  /** The host's replies: a JSON array of `[slot, 1, value]` or `[slot, 0, error]`. */
  const deliver = (text: string) => {
    const entries = parse(text) as Array<[number, number, unknown]>;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as [number, number, unknown];
      const resolve = waiting[entry[0]];
      if (resolve === undefined) continue;
      delete waiting[entry[0]];
      inFlight--;
      // A box with no prototype: resolving with it can never run a `then` the program added.
      const box: Reply = createObject(null);
      box.ok = entry[1] === 1;
      box.body = entry[2];
      resolve(box);
    }
  };
  // Runs as a reaction in the program's await chain, so V8 reports the program's `await` line
  // for a ToolError created here, as an async frame.
  const settle = (box: Reply): unknown => {
    const body = box.body as { name: string; message: string; limit: string } & ToolErrorBody;
    if (box.ok) return body;
    if (body.name === "LimitError") throw new LimitError(body.message, body.limit);
    throw new ToolError(body.message, body.server, body.tool, body.code);
  };
  // The rejection happens a microtask later, when the program has had its chance to handle it:
  // isolated-vm keeps a list of rejections without a handler and scans all of it each time one
  // gets a handler, so 100,000 promises rejected on the spot (the calls past
  // maxConcurrentCalls in a `Promise.all`) cost seconds of CPU before the limit error surfaced.
  const rejectWith = (error: Error): Promise<never> =>
    reflectApply(promiseThen, resolved, [
      () => {
        throw error;
      },
    ]);

  // ---- step keys ------------------------------------------------------------------------------

  // A step key names a call by what it asks: `namespace.method:<hash>#<n>`, the hash over the
  // arguments as canonical JSON (see step-key.ts), n the number of earlier calls in this run
  // with the same method and arguments. Calls are made in program order, even under
  // `Promise.all`, so a re-run derives the same keys, and an edited program that makes the same
  // calls finds their checkpoints. The arguments are read once, into the JSON text that goes to
  // the host; the key is made from that text parsed, never from the program's object again (a
  // getter may answer differently on each read), and the host checks it against the same text.
  const hasOwn = Object.hasOwn;
  const replay = config.replay;
  const replayed: string[] = [];
  const occurrences: Record<string, number> = createObject(null);

  function stepKey(label: string, json: string): string {
    const base = `${label}:${hashArgs(parse(json))}`;
    const n = occurrences[base] ?? 0;
    occurrences[base] = n + 1;
    return `${base}#${n}`;
  }

  /**
   * A method of the run's tools, or (with `down`) of a server that could not be reached: a call
   * of it is checked and keyed as any call is, so a checkpointed one still replays, and the
   * others reject with a ToolError coded `server_unavailable`, without going to the host.
   */
  function makeMethod(namespace: string, method: string, id: number, down?: UnavailableEntry) {
    const label = `${namespace}.${method}`;
    const call = (args?: unknown): Promise<unknown> => {
      if (args === undefined) args = {};
      if (args === null || typeof args !== "object" || isArray(args)) {
        return rejectWith(
          new TypeErrorCtor(`${label}() takes one object argument, got ${describeType(args)}`),
        );
      }
      let json: string | undefined;
      try {
        json = stringify(args);
      } catch (error) {
        return rejectWith(
          new TypeErrorCtor(`${label}(): its argument is not JSON: ${messageOf(error)}`),
        );
      }
      if (typeof json !== "string") {
        return rejectWith(new TypeErrorCtor(`${label}(): its argument's toJSON() gave nothing`));
      }
      if (json.length > limits.maxArgBytes) {
        return rejectWith(
          new LimitError(
            `${label}(): its argument is ${json.length} bytes, over the ${limits.maxArgBytes}-byte limit (maxArgBytes)`,
            "maxArgBytes",
          ),
        );
      }
      if (started >= limits.maxToolCalls) {
        return rejectWith(
          new LimitError(
            `${label}(): the program already made ${limits.maxToolCalls} tool calls, its limit (maxToolCalls)`,
            "maxToolCalls",
          ),
        );
      }
      if (inFlight >= limits.maxConcurrentCalls) {
        return rejectWith(
          new LimitError(
            `${label}(): ${limits.maxConcurrentCalls} tool calls are already in flight, the limit (maxConcurrentCalls); await some before starting more`,
            "maxConcurrentCalls",
          ),
        );
      }
      let key: string | undefined;
      if (config.durable) {
        key = stepKey(label, json);
        if (replay !== null && hasOwn(replay, key)) {
          replayed[replayed.length] = key;
          const value = replay[key];
          return reflectApply(promiseThen, resolved, [() => value]);
        }
      }
      if (down !== undefined) {
        return rejectWith(new ToolError(down[2], down[1], method, "server_unavailable"));
      }
      const slot = started++;
      const line = `${slot},${id},${key ?? ""}\t${json}\n`;
      // A call made with none in flight goes out at once (a sequential program's every call);
      // the others of the same turn wait for its flush. inFlight only drops when replies come,
      // in a later task, so the flush still leaves before any call of a later turn.
      if (inFlight === 0) send(line);
      else {
        outbox += line;
        if (!flushQueued) {
          flushQueued = true;
          reflectApply(promiseThen, resolved, [flush]);
        }
      }
      inFlight++;
      const pending = shielded(new PromiseCtor<Reply>(takeResolve));
      waiting[slot] = handedOver as (box: Reply) => void;
      return reflectApply(promiseThen, pending, [settle]);
    };
    defineProperty(call, "name", { value: method });
    return call;
  }

  // Calls name their method by its position in this list, which the host holds too: a number
  // crosses the boundary cheaper than two strings.
  let nextId = 0;
  for (const [namespace, methods] of config.namespaces) {
    const api = createObject(null);
    for (const method of methods) api[method] = makeMethod(namespace, method, nextId++);
    defineProperty(globalThis, namespace, {
      value: freeze(api),
      enumerable: true,
      writable: false,
      configurable: false,
    });
  }

  // A server that could not be reached still has its namespace, so that a program that catches
  // its errors goes on: any method name makes a method whose calls reject. `then` is not one
  // (`await ns` must not wait forever), nor is `toJSON` (JSON.stringify, which logging and a
  // returned result go through, would call it and leave its rejection unhandled, failing the
  // run), nor is a symbol (nothing a program calls).
  for (const down of config.unavailable) {
    const namespace = down[0];
    const methods: Record<string, unknown> = createObject(null);
    const handler = createObject(null);
    handler.get = (_target: object, property: string | symbol): unknown => {
      if (typeof property !== "string" || property === "then" || property === "toJSON") {
        return undefined;
      }
      methods[property] ??= makeMethod(namespace, property, -1, down);
      return methods[property];
    };
    defineProperty(globalThis, namespace, {
      value: new ProxyCtor(freeze(createObject(null)), freeze(handler)),
      enumerable: true,
      writable: false,
      configurable: false,
    });
  }

  // ---- console -----------------------------------------------------------------------------

  let logChars = 0;
  let logClosed = false;
  let logLinesSent = 0;
  const MAX_VALUE_CHARS = 10_000;

  function formatValue(value: unknown): string {
    switch (typeof value) {
      case "string":
        return value;
      case "bigint":
        return `${toStr(value)}n`;
      case "symbol":
        return value.toString();
      case "function":
        return `[Function ${value.name || "anonymous"}]`;
      case "object": {
        if (value === null) return "null";
        if (value instanceof ErrorCtor) {
          const stack = value.stack;
          return typeof stack === "string" ? stack : `${value.name}: ${value.message}`;
        }
        const seen = new SetCtor();
        const text = stringify(value, (_key, inner) => {
          if (typeof inner === "bigint") return `${toStr(inner)}n`;
          if (inner instanceof MapCtor) return { "[Map]": [...inner] };
          if (inner instanceof SetCtor) return { "[Set]": [...inner] };
          if (inner !== null && typeof inner === "object") {
            if (seen.has(inner)) return "[Circular]";
            seen.add(inner);
          }
          return inner;
        });
        return text.length > MAX_VALUE_CHARS ? `${slice(text, MAX_VALUE_CHARS)}…` : text;
      }
      default:
        return toStr(value);
    }
  }

  function emit(level: string, args: unknown[]): void {
    if (logClosed) return;
    let text = "";
    try {
      for (let i = 0; i < args.length; i++) text += (i === 0 ? "" : " ") + formatValue(args[i]);
    } catch (error) {
      text = `[unprintable value: ${messageOf(error)}]`;
    }
    logChars += text.length + 1;
    if (logChars > limits.maxLogBytes) {
      logClosed = true;
      logLinesSent++;
      hostLog(
        "warn",
        `[turtle] log limit of ${limits.maxLogBytes} bytes reached; later output dropped`,
      );
      return;
    }
    logLinesSent++;
    hostLog(level, text);
  }

  const guestConsole = createObject(null);
  for (const level of ["log", "info", "warn", "error", "debug"]) {
    guestConsole[level] = (...args: unknown[]) => emit(level, args);
  }
  guestConsole.trace = guestConsole.debug;

  const globals: Record<string, unknown> = {
    input: config.input,
    console: freeze(guestConsole),
    ToolError,
  };
  for (const name of ["input", "console", "ToolError"]) {
    defineProperty(globalThis, name, {
      value: globals[name],
      enumerable: false,
      writable: name === "input",
      configurable: false,
    });
  }

  // ---- result and error ----------------------------------------------------------------------

  function messageOf(error: unknown): string {
    try {
      if (error !== null && typeof error === "object" && "message" in error) {
        return toStr((error as { message: unknown }).message);
      }
      return toStr(error);
    } catch {
      return "unreadable error";
    }
  }

  function resultReplacer(_key: string, value: unknown): unknown {
    switch (typeof value) {
      case "bigint":
        throw new TypeErrorCtor(
          "it contains a BigInt, which JSON cannot represent; return String(n) or Number(n)",
        );
      case "function":
        throw new TypeErrorCtor("it contains a function, which JSON cannot represent");
      case "symbol":
        throw new TypeErrorCtor("it contains a Symbol, which JSON cannot represent");
      case "object":
        if (value instanceof MapCtor) {
          throw new TypeErrorCtor(
            "it contains a Map, which JSON cannot represent; return Object.fromEntries(map)",
          );
        }
        if (value instanceof SetCtor) {
          throw new TypeErrorCtor(
            "it contains a Set, which JSON cannot represent; return [...set]",
          );
        }
        return value;
      default:
        return value;
    }
  }

  function resultError(message: string): string {
    return `E${stringify({ name: "ResultError", message: `The program's result is not usable: ${message}` })}`;
  }

  function encodeResult(value: unknown): string {
    if (value === undefined) return "Rnull";
    let json: string | undefined;
    try {
      json = stringify(value, resultReplacer);
    } catch (error) {
      const message = messageOf(error);
      return resultError(
        /call stack/i.test(message) ? "it is nested too deeply to serialize as JSON" : message,
      );
    }
    if (json === undefined) return "Rnull";
    if (json.length > limits.maxResultBytes) {
      return resultError(
        `it is ${json.length} bytes of JSON, over the ${limits.maxResultBytes}-byte limit (maxResultBytes)`,
      );
    }
    return `R${json}`;
  }

  function readString(value: unknown, fallback: string, max: number): string {
    const text = typeof value === "string" ? value : value === undefined ? fallback : toStr(value);
    return text.length > max ? `${slice(text, max)}…` : text;
  }

  function encodeError(error: unknown): string {
    let out: Record<string, unknown>;
    try {
      if (error !== null && (typeof error === "object" || typeof error === "function")) {
        const thrown = error as Record<string, unknown>;
        let message = readString(thrown.message, "", 8_000);
        // `throw {}` and the like say nothing by themselves: name the value instead.
        if (message === "" && !(error instanceof ErrorCtor)) {
          message = `Uncaught ${readString(formatValue(error), "", 200)}`;
        }
        out = {
          name: readString(thrown.name, "Error", 200),
          message,
          stack: typeof thrown.stack === "string" ? slice(thrown.stack, 16_000) : undefined,
        };
        // The program can construct these itself (`new ToolError(msg, hugeObject, …)`).
        if (error instanceof ToolError) {
          out.server = readString(error.server, "", 200);
          out.tool = readString(error.tool, "", 200);
          out.code = readString(error.code, "", 200);
        }
        if (error instanceof LimitError) out.limit = readString(error.limit, "", 200);
      } else {
        out = {
          name: "Error",
          message: `Uncaught ${typeof error === "string" ? stringify(error) : readString(error, "undefined", 200)}`,
        };
      }
    } catch {
      out = { name: "Error", message: "The program threw a value whose properties cannot be read" };
    }
    return `E${stringify(out)}`;
  }

  // The reply's envelope: its tag, [the replayed step keys, console lines sent], NUL, its body. Built inside `run`, so
  // the promise handed to isolated-vm is the async function's own (a `then` on it would consult
  // a species the program can replace).
  const envelope = (reply: string): string =>
    `${reply[0]}${stringify([replayed, logLinesSent])}\0${reflectApply(stringSlice, reply, [1])}`;
  const run = async (main: () => Promise<unknown>): Promise<string> => {
    let value: unknown;
    try {
      value = await main();
    } catch (error) {
      return envelope(encodeError(error));
    }
    return envelope(encodeResult(value));
  };
  // One entry point for the host, unreachable from the program: replies to deliver (a string),
  // or the program's main function to run, once.
  let ran = false;
  return (arg: string | (() => Promise<unknown>)) => {
    if (typeof arg === "string") {
      deliver(arg);
      return undefined;
    }
    if (ran) return undefined;
    ran = true;
    return run(arg);
  };
}

/** The view of an isolated-vm Reference from inside the isolate. */
interface GuestReference {
  apply: (...args: unknown[]) => Promise<string>;
  applyIgnored: (...args: unknown[]) => void;
}

/** A call's reply as the guest hands it to the call's promise. */
interface Reply {
  ok: boolean;
  body: unknown;
}

interface ToolErrorBody {
  server: string;
  tool: string;
  code: string;
}

/** A server that could not be reached: [namespace, server, message]. */
type UnavailableEntry = [string, string, string];

export interface GuestConfig {
  input: unknown;
  namespaces: Array<[string, string[]]>;
  unavailable: UnavailableEntry[];
  /** Whether calls carry step keys. */
  durable: boolean;
  /** Step key → result, for calls answered without the host. */
  replay: Record<string, unknown> | null;
  limits: {
    maxArgBytes: number;
    maxLogBytes: number;
    maxResultBytes: number;
    maxConcurrentCalls: number;
    maxToolCalls: number;
  };
}

export const GUEST_RUNTIME_SOURCE: string = guestRuntime.toString();
