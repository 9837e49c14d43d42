import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import {
  createToolHost,
  expectFailure,
  expectHostHealthy,
  expectSuccess,
  peakRssDuring,
  runWith,
} from "./helpers.ts";

/**
 * vm2's catalogue of sandbox escapes (patriksimek/vm2, docs/ATTACKS.md: 32 categories) and its
 * advisories, replayed against Turtle's sandbox.
 *
 * vm2 runs untrusted code in a second realm of the host's own isolate and guards the border
 * with proxies, so nearly every attack hunts a host-realm object (host `Function` → `process`).
 * Here each run has an isolate of its own: nothing of the host's heap is inside, and the only
 * ways out are the guest runtime's two fire-and-forget functions, kept in its closure. So each
 * category is read as what it would mean here: reach those functions (or any isolated-vm
 * Reference), make the runtime run the program's code with its internals at hand, get the
 * host to run the program's code, or hurt the host process.
 *
 * Cat. | Applies to isolated-vm? Why | Covered by ("h:" = a title in hostile.test.ts)
 * 1  Constructor chain traversal | yes: every Function reached must be the isolate's |
 *    this file "Category 1 …"; h: "the Function constructor reaches only the isolate's own
 *    global", "`this.constructor.constructor('return process')()` fails: the program is strict"
 * 2  Prototype chain manipulation | yes: pollution aimed at the runtime's descriptors |
 *    "Category 2 …"
 * 3  Symbol-based attacks | yes: the runtime uses `instanceof` on the program's values |
 *    "Category 3 …"; species: h: "Symbol.species and Promise.prototype.then overrides leave
 *    tool calls working"
 * 4  Error object exploitation | yes: errors born in the runtime or in isolated-vm |
 *    "Category 4 and CVE-2019-10761 …"; h: "Error.prepareStackTrace cannot be assigned, and the
 *    error still has its location", "infinite recursion is a RangeError with the program's
 *    location"
 * 5  Function caller/callee | yes: a sloppy function's `.caller` would name sloppy callers; the
 *    runtime is strict code, so it names none | "Category 5 …"
 * 6  Proxy trap exploitation | yes: proxies handed to the runtime | "Category 6 …"; h: "throwing
 *    a proxy whose traps throw is reported as unreadable", "logging hostile values prints what it
 *    can and never throws"
 * 7  Promise and async exploitation | yes: the runtime's promises and rejections |
 *    "Category 7 …", "Category 7, CVE-2023-37466 and CVE-2026-22709 …"; h: "a Promise species
 *    poisoned to return %s cannot make runProgram throw"
 * 8  Cross-realm symbol extraction | yes in form: Symbol.for is the isolate's own registry and
 *    only strings leave it | "Category 8 and CVE-2023-37903 …"
 * 9  Proxy handler exposure via util.inspect | no: nothing in the isolate has util.inspect and
 *    logs leave as strings; the runtime's one proxy handler is out of reach (h: "the original
 *    ArrayBuffer constructors are out of reach: every way to them is guarded")
 * 10 Built-in function exploitation | yes: globals replaced before tool calls | "Category 10 …"
 * 11 Monkey-patching bridge internals | yes: the runtime captures its intrinsics first |
 *    "Category 11 and CVE-2022-25893 …"; h: "Object.prototype, Array.prototype, JSON and
 *    Reflect pollution leaves tool calls working"
 * 12 Code transformation bypass | partly: nothing is instrumented, but the program sits in a
 *    wrapper | h: "the closure's parameters are out of the program's reach", "closing the wrapper
 *    early runs code only after the runtime has armed itself". Known: `using` declarations and
 *    `with` statements are an internal_error today (esbuild's helpers land before the wrapper)
 * 13 Dynamic import | yes | "Category 13 and CVE-2021-23449 …"; h: "`await import('fs')` fails
 *    clearly", "a static import is a compile error"
 * 14 Object.prototype trap pollution via `in` | yes: the runtime's ArrayBuffer proxies |
 *    "Category 14 …"
 * 15 Property descriptor value extraction | yes in form: every reachable descriptor |
 *    "Category 15 and 27 …"
 * 16 SuppressedError via explicit resource management | yes: DisposableStack is there |
 *    "Category 16 …"
 * 17 WebAssembly JSTag | no: WebAssembly is removed | h: "WebAssembly is not there: its memories
 *    grew past memoryMb (3 GB in a 32 MB isolate)"
 * 18 Array species self-return | yes in form: arrays handed to the runtime | "Category 18 …"
 * 19 Host prepareStackTrace fallback via Array.fromAsync | yes in form: the isolate has no host
 *    formatter to fall back on | "Category 19 …"
 * 20 Host intrinsic prototype pollution | yes in form: the host's and the next run's intrinsics |
 *    "Category 20 …"; h: "what one run does to its globals, the next run never sees"
 * 21 NodeVM builtin allowlist bypass | no: there is no require and no module at all | h:
 *    "`require('fs')` is a ReferenceError", "none of the host's globals is there"
 * 22 Promise executor unhandled rejection (host DoS) | yes | "Category 22 …"; h: "an unhandled
 *    rejection in the program's synchronous start fails the run at its line"
 * 23 Unbounded allocation (host heap DoS) | yes: typed arrays; and two payloads that do kill the
 *    host (isolated-vm#107) | "Category 23 …", "… kills the process that hosts the isolate …";
 *    h: "100 ArrayBuffers of 16 MB kept alive fail inside the limit, the host's memory intact"
 * 24 NodeVM require.root symlink bypass | no: no filesystem, no require | —
 * 25 NodeVM `nesting: true` | no: no module can build a sandbox | —
 * 26 Null-prototype values through the bridge | yes in form | "Category 26 …"
 * 27 Internal state probe via globalThis | yes: the runtime's state is in its closure |
 *    "Category 15 and 27 …"; h: "the globals are exactly ECMAScript's plus input, console,
 *    ToolError and the namespaces"
 * 28 Internal-container leak via Array.prototype setters | yes: the runtime's `replayed` list is
 *    an array | "Category 28 …". Array.prototype.toJSON lets a program rewrite the replayed
 *    keys its reply reports (its own job's accounting only); the host reads no more of them than
 *    the replay table holds, each once (durable.test.ts: "forged replayed keys …")
 * 29 Async generator yield*-return thenable | yes in form | "Category 29 and CVE-2026-45411 …"
 * 30 Prototype mutation via `__proto__` setter | yes in form: severing the runtime's classes |
 *    "Category 30 …"
 * 31 Promise species hijack of an internal then | yes in form | "Category 31 …"
 * 32 Set trap ignores the receiver | yes in form: writes through objects inheriting from a
 *    namespace | "Category 32 …"; h: "namespaces are frozen objects without a prototype; input is
 *    the program's to change"
 *
 * Advisories: CVE-2019-10761 (stack overflow at the border) → "Category 4 and CVE-2019-10761 …";
 * CVE-2022-36067 and CVE-2023-29017 (prepareStackTrace) → "CVE-2022-36067 and CVE-2023-29017 …";
 * CVE-2023-30547 (exception sanitizer bypass) → "CVE-2023-30547 …"; CVE-2023-32314 (proxied
 * error name) → "CVE-2023-32314 …"; CVE-2023-37466 and CVE-2026-22709 (promise species, async
 * function promises) → "Category 7, CVE-2023-37466 and CVE-2026-22709 …"; CVE-2023-37903 (custom
 * inspect) → "Category 8 and CVE-2023-37903 …"; CVE-2023-32313 (inspect showProxy) → no (see 9);
 * CVE-2022-25893 (WeakMap.prototype.set) → "Category 11 and CVE-2022-25893 …"; CVE-2023-29199
 * (transformer) → no transformer (see 12); CVE-2021-23449 (import()) → "Category 13 and
 * CVE-2021-23449 …"; CVE-2026-45411 (yield*) → "Category 29 and CVE-2026-45411 …".
 */

afterEach(async () => {
  await expectHostHealthy();
});

const MIB = 2 ** 20;

/** The isolate's own Function, and no process behind it: what a climb from a value reports. */
const ISOLATE_ONLY = [true, "undefined"];

describe("Tier 1: primitives", () => {
  it("Category 1 (constructor chains): every object the runtime hands over climbs only to the isolate's Function", async () => {
    const code = [
      "const reached: Record<string, unknown> = {};",
      "const climb = (name: string, value: any) => {",
      "  const F = value.constructor.constructor;",
      "  reached[name] = [F === Function, F('return typeof process')()];",
      "};",
      "const pending = tools.echo({ n: 1 });",
      "climb('call promise', pending);",
      "climb('tool result', await pending);",
      "try { await tools.fail({}); } catch (e) { climb('ToolError', e); }",
      "try { await tools.echo(5 as any); } catch (e) { climb('argument TypeError', e); }",
      "try { await tools.echo({}); } catch (e) { climb('LimitError', e); }",
      "climb('tool method', tools.echo);",
      "climb('console.log', console.log);",
      "climb('input', input);",
      "climb('ToolError class', ToolError);",
      "return { reached, protos: [Object.getPrototypeOf(tools), Object.getPrototypeOf(console)] };",
    ].join("\n");
    const run = await runWith(createToolHost(), code, {
      input: { a: 1 },
      limits: { maxToolCalls: 2 },
    });
    const names = [
      "call promise",
      "tool result",
      "ToolError",
      "argument TypeError",
      "LimitError",
      "tool method",
      "console.log",
      "input",
      "ToolError class",
    ];
    expect(expectSuccess(run)).toEqual({
      reached: Object.fromEntries(names.map((name) => [name, ISOLATE_ONLY])),
      protos: [null, null],
    });
  });

  it("Category 2 (prototype chains): accessors on Object.prototype never fire in the runtime, and __proto__ climbs end at the isolate's Object.prototype", async () => {
    const toolHost = createToolHost();
    const code = [
      "let fired = 0;",
      "for (const key of ['get', 'set', 'value', 'writable', 'enumerable', 'configurable']) {",
      "  // A descriptor without a prototype, or the next one would read the accessors set so far.",
      "  Object.defineProperty(Object.prototype, key, {",
      "    __proto__: null,",
      "    get() { fired++; throw (f: any) => f.constructor('return process')(); },",
      "    configurable: true,",
      "  } as PropertyDescriptor);",
      "}",
      "const echoed: any = await tools.echo({ x: 1 });",
      "let failed;",
      "try { await tools.fail({}); } catch (e: any) { failed = e.name; }",
      "console.log('logged', { y: 2 });",
      "const chain: string[] = [];",
      "for (let o = echoed.__proto__; o; o = o.__proto__) {",
      "  chain.push(o === Object.prototype ? 'Object.prototype' : 'other');",
      "}",
      "let reparent;",
      "try { Object.setPrototypeOf(tools, {}); reparent = 'reparented'; } catch (e: any) { reparent = e.name; }",
      "return { fired, echoed, failed, chain, reparent, protoAccessor: '__proto__' in tools };",
    ].join("\n");
    const run = await runWith(toolHost, code);
    expect(expectSuccess(run)).toEqual({
      fired: 0,
      echoed: { x: 1 },
      failed: "ToolError",
      chain: ["Object.prototype"],
      reparent: "TypeError",
      protoAccessor: false,
    });
    expect(run.logs.map((entry) => entry.message)).toEqual(['logged {"y":2}']);
    expect(toolHost.calls.map((call) => call.method)).toEqual(["echo", "fail"]);
  });

  it("Category 3 (well-known symbols): Symbol.hasInstance overrides see only the program's own values, and tool calls are unaffected", async () => {
    const code = [
      "const seen: string[] = [];",
      "const pairs: Array<[string, any]> = [['Error', Error], ['ToolError', ToolError], ['Map', Map], ['Set', Set]];",
      "for (const [label, C] of pairs) {",
      "  Object.defineProperty(C, Symbol.hasInstance, {",
      "    value: (value: unknown) => { seen.push(label + ':' + typeof value); return false; },",
      "  });",
      "}",
      "Object.defineProperty(Object.prototype, Symbol.toPrimitive, {",
      "  value: () => { seen.push('toPrimitive'); return 'primitive'; }, configurable: true,",
      "});",
      "const echoed = await tools.echo({ x: 1 });",
      "let failed;",
      "try { await tools.fail({}); } catch (e: any) { failed = [e.name, e.message, e.server, e.tool, e.code]; }",
      "console.log(new Error('logged'), new Map([[1, 2]]));",
      "return { echoed, failed, seen: seen.slice() };",
    ].join("\n");
    const run = await runWith(createToolHost(), code);
    expect(expectSuccess(run)).toEqual({
      echoed: { x: 1 },
      failed: ["ToolError", "the tool failed on purpose", "tools", "fail", "deliberate"],
      // The runtime asks `instanceof` of what the program logs: its own values, told "no".
      seen: [
        "Error:object",
        "Map:object",
        "Set:object",
        "Error:object",
        "Map:object",
        "Set:object",
      ],
    });
    expect(run.logs.map((entry) => entry.message)).toEqual(["{} {}"]);
  });

  it("Category 4 and CVE-2019-10761 (errors, stack overflow at the border): a Symbol-named error and an overflow at every depth of a tool call give only the isolate's errors", async () => {
    const toolHost = createToolHost();
    const code = [
      "await tools.echo({ first: true });",
      "const foreign: string[] = [];",
      "const check = (e: any) => {",
      "  const F = e?.constructor?.constructor;",
      "  if (!(e instanceof Error) || F !== Function || F('return typeof process')() !== 'undefined') {",
      "    foreign.push(String(e));",
      "  }",
      "};",
      "const named = new Error('x');",
      "(named as any).name = Symbol('s');",
      "let stack: unknown;",
      "try { stack = typeof named.stack; } catch (e) { check(e); stack = 'threw'; }",
      "// Recurse until the stack runs out, then make a tool call in each of the 300 deepest frames",
      "// on the way back: each has a little more room, so the stack runs out at every step of the",
      "// call's way into isolated-vm until the calls go through.",
      "// Errors are only kept down there (checking one takes stack of its own).",
      "const outcomes = new Set<string>();",
      "const callErrors: any[] = [];",
      "let overflow: unknown;",
      "let attempts = 0;",
      "const dive = (): void => {",
      "  try { dive(); } catch (e) { overflow = e; }",
      "  if (attempts >= 300) return;",
      "  attempts++;",
      "  try { tools.echo({ bottom: true }); outcomes.add('called'); } catch (e) { callErrors.push(e); }",
      "};",
      "dive();",
      "check(overflow);",
      "for (const e of callErrors) { check(e); outcomes.add(e.name + ': ' + e.message); }",
      "const after = await tools.echo({ after: true });",
      "return { stack, foreign, outcomes: [...outcomes].sort(), after };",
    ].join("\n");
    const run = await runWith(toolHost, code);
    expect(expectSuccess(run)).toEqual({
      stack: "string",
      foreign: [],
      outcomes: ["RangeError: Maximum call stack size exceeded", "called"],
      after: { after: true },
    });
    expect(toolHost.calls.at(-1)?.args).toEqual({ after: true });
  });

  it("Category 5 (caller/callee): a sloppy function the runtime calls finds no caller: the runtime is strict code", async () => {
    // `.caller` of a sloppy function called from strict code is null, so no helper of the
    // runtime can be named, let alone its arguments read.
    const code = [
      "const seen: string[][] = [];",
      "const spy = (tag: string) => Function('seen', 'tag', `return function spy() {",
      "  var names = [tag], f = spy.caller;",
      "  while (f) {",
      "    var args;",
      "    try { args = Array.prototype.map.call(f.arguments, function (a) { return typeof a; }).join(','); }",
      "    catch (e) { args = e.name; }",
      "    names.push(f.name + '(' + args + ')');",
      "    try { f = f.caller; } catch (e) { names.push(e.name); break; }",
      "  }",
      "  seen.push(names);",
      "  return 'spied';",
      "}`)(seen, tag);",
      "console.log({ toJSON: spy('log') });",
      "const argument = {};",
      "Object.defineProperty(argument, 'x', { get: spy('argument'), enumerable: true });",
      "await tools.echo(argument);",
      "// The getter comes before `seen`, which is serialized after it has run.",
      "const result: any = {};",
      "Object.defineProperty(result, 'x', { get: spy('result'), enumerable: true });",
      "result.seen = seen;",
      "return result;",
    ].join("\n");
    const run = await runWith(createToolHost(), code, { durable: {} });
    expect(expectSuccess(run)).toEqual({
      // The argument's getter runs once: a program's value is read once, into the JSON text
      // that both the tool and the step key come from.
      seen: [["log"], ["argument"], ["result"]],
      x: "spied",
    });
    expect(run.logs.map((entry) => entry.message)).toEqual(['"spied"']);
  });
});

describe("Tier 2: techniques", () => {
  it("Category 6 (proxy traps): a proxy as tool argument and log value runs only its own traps, and the functions they throw are never called", async () => {
    const toolHost = createToolHost();
    const code = [
      "let called = 0;",
      "const escape = () => { called++; return 'escaped'; };",
      "Object.defineProperty(escape, 'toString', { value: () => 'the function a trap threw' });",
      "const trap = () => { throw escape; };",
      "const hostile = () => new Proxy({}, {",
      "  get: trap, has: trap, ownKeys: trap, getPrototypeOf: trap, getOwnPropertyDescriptor: trap,",
      "});",
      "let sent;",
      "try { await tools.echo(hostile()); sent = 'sent'; } catch (e: any) { sent = [e.name, e.message]; }",
      "console.log(hostile());",
      "const made = new (new Proxy(class {}, { construct: () => ({ made: true }) }) as any)();",
      "return { sent, called, made, echoed: await tools.echo({ ok: 1 }) };",
    ].join("\n");
    const run = await runWith(toolHost, code);
    expect(expectSuccess(run)).toEqual({
      sent: ["TypeError", "tools.echo(): its argument is not JSON: the function a trap threw"],
      called: 0,
      made: { made: true },
      echoed: { ok: 1 },
    });
    expect(run.logs.map((entry) => entry.message)).toEqual([
      "[unprintable value: the function a trap threw]",
    ]);
    expect(toolHost.calls.map((call) => call.args)).toEqual([{ ok: 1 }]);
  });

  it("Category 7 (Promise statics stolen onto a fake constructor): the fake's reject receives only the isolate's own errors", async () => {
    const code = [
      "const received: Record<string, unknown> = {};",
      "const { promise: done, resolve: finish } = Promise.withResolvers<void>();",
      "let label = '';",
      "function FakePromise(this: unknown, executor: any) {",
      "  const mine = label;",
      "  executor(() => {}, (e: any) => {",
      "    const F = e.constructor.constructor;",
      "    received[mine] = [e.name, F === Function, F('return typeof process')()];",
      "    if (Object.keys(received).length === 4) finish();",
      "  });",
      "}",
      "const fake: any = FakePromise;",
      "fake.resolve = (value: unknown) => Promise.resolve(value);",
      "fake.all = Promise.all;",
      "fake.try = (Promise as any).try;",
      "fake[Symbol.species] = FakePromise;",
      "label = 'all over a failing call';",
      "fake.all([tools.fail({})]);",
      "label = 'all over a throwing iterator';",
      "fake.all({ [Symbol.iterator]() { return (null as any).x; } });",
      "label = 'try';",
      "fake.try(() => (null as any).y);",
      "label = 'Reflect.construct';",
      "const made: any = Reflect.construct(Promise, [(_: unknown, reject: any) => reject(new Error('direct'))], FakePromise);",
      "made.then = Promise.prototype.then;",
      "made.then();",
      "await done;",
      "return received;",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      "all over a failing call": ["ToolError", ...ISOLATE_ONLY],
      "all over a throwing iterator": ["TypeError", ...ISOLATE_ONLY],
      try: ["TypeError", ...ISOLATE_ONLY],
      "Reflect.construct": ["Error", ...ISOLATE_ONLY],
    });
  });

  it("Category 7, CVE-2023-37466 and CVE-2026-22709 (species on the promises of calls and async functions): the fake constructor receives the isolate's ToolError", async () => {
    const code = [
      "const received: Record<string, unknown> = {};",
      "const { promise: done, resolve: finish } = Promise.withResolvers<void>();",
      "const fakeFor = (label: string) => class FakePromise {",
      "  constructor(executor: any) {",
      "    executor(() => {}, (e: any) => {",
      "      const F = e.constructor.constructor;",
      "      received[label] = [e.name, e instanceof ToolError, F === Function, F('return typeof process')()];",
      "      if (Object.keys(received).length === 4) finish();",
      "    });",
      "  }",
      "};",
      "async function failing() { await tools.fail({}); }",
      "// CVE-2023-37466: a species on an async function's promise.",
      "const viaAsync: any = failing();",
      "viaAsync.constructor = { [Symbol.species]: fakeFor('async function species') };",
      "viaAsync.then();",
      "// A constructor getter on a call's promise (vm2's TOCTOU: here V8's read is the only one).",
      "const viaGetter: any = tools.fail({});",
      "Object.defineProperty(viaGetter, 'constructor', {",
      "  get() { return { [Symbol.species]: fakeFor('constructor getter') }; },",
      "});",
      "viaGetter.then();",
      "// The same getter on the prototype, where an own-property check sees nothing.",
      "const viaPrototype: any = tools.fail({});",
      "// (Put back at once: every promise the program awaits would consult it too.)",
      "Object.defineProperty(Promise.prototype, 'constructor', {",
      "  get() { return { [Symbol.species]: fakeFor('prototype getter') }; }, configurable: true,",
      "});",
      "viaPrototype.then();",
      "Object.defineProperty(Promise.prototype, 'constructor', { value: Promise, writable: true, configurable: true });",
      "// CVE-2026-22709: then and catch on an async function's own promise.",
      "failing().catch((e: any) => {",
      "  const F = e.constructor.constructor;",
      "  received['async function catch'] = [e.name, e instanceof ToolError, F === Function, F('return typeof process')()];",
      "  if (Object.keys(received).length === 4) finish();",
      "});",
      "await done;",
      "return received;",
    ].join("\n");
    const isolateToolError = ["ToolError", true, ...ISOLATE_ONLY];
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      "async function species": isolateToolError,
      "constructor getter": isolateToolError,
      "prototype getter": isolateToolError,
      "async function catch": isolateToolError,
    });
  });

  it("Category 8 and CVE-2023-37903 (cross-realm symbols, custom inspect): Symbol.for hooks are never called and the host gets plain JSON", async () => {
    const toolHost = createToolHost();
    const code = [
      "let called = 0;",
      "const hook = function () { called++; return 'hooked'; };",
      "const keys = ['nodejs.util.inspect.custom', 'nodejs.rejection', 'nodejs.util.promisify.custom'];",
      "const hooked = (target: any) => { for (const key of keys) target[Symbol.for(key)] = hook; return target; };",
      "console.log(hooked({ a: 1 }));",
      "const echoed = await tools.echo(hooked({ a: 1 }));",
      "Promise.reject(hooked(new Error('rejected'))).catch(() => {});",
      "let failed;",
      "try { await tools.fail({}); } catch (e: any) { hooked(e); failed = e.name; }",
      "const symbols = Object.getOwnPropertySymbols(echoed).length;",
      "return hooked({ called, echoed, failed, symbols });",
    ].join("\n");
    const run = await runWith(toolHost, code);
    expect(expectSuccess(run)).toEqual({
      called: 0,
      echoed: { a: 1 },
      failed: "ToolError",
      symbols: 0,
    });
    expect(run.logs.map((entry) => entry.message)).toEqual(['{"a":1}']);
    const [sent] = toolHost.calls;
    expect(sent?.args).toEqual({ a: 1 });
    expect(Object.getOwnPropertySymbols(sent?.args)).toEqual([]);
    // The host's own inspect sees copies, never the program's objects.
    expect(inspect(run, { depth: null, customInspect: true })).not.toContain("hooked");
  });

  it("Category 10 (built-in functions): replacing the global constructors leaves tool calls, their errors and logs working", async () => {
    const code = [
      "const g = globalThis as any;",
      "const names = ['Array', 'Object', 'Promise', 'Error', 'TypeError', 'Map', 'Set', 'WeakMap',",
      "  'Symbol', 'JSON', 'Reflect', 'String', 'Number', 'Function', 'Proxy', 'ArrayBuffer'];",
      "for (const name of names) g[name] = function hijacked() { throw new RangeError('hijacked ' + name); };",
      "const out: unknown[] = [];",
      "out.push(await tools.echo({ a: [1, 2] }));",
      "try { await tools.fail({}); } catch (e: any) { out.push(e.name, e.code); }",
      "try { await (tools.echo as any)(1); } catch (e: any) { out.push(e.name); }",
      "console.log({ m: 1 }, [1]);",
      "return out;",
    ].join("\n");
    const run = await runWith(createToolHost(), code);
    expect(expectSuccess(run)).toEqual([{ a: [1, 2] }, "ToolError", "deliberate", "TypeError"]);
    expect(run.logs.map((entry) => entry.message)).toEqual(['{"m":1} [1]']);
  });

  it("Category 11 and CVE-2022-25893 (monkey-patched methods, WeakMap.prototype.set): durable calls still go out right; the runtime runs the patches only on its copies of the program's keys and values", async () => {
    const toolHost = createToolHost();
    const code = [
      "const captured: string[] = [];",
      "const note = (text: string) => { captured[captured.length] = text; };",
      "const boom = (name: string) => function () { note(name); throw new Error(name); };",
      "Function.prototype.call = boom('call') as any;",
      "Function.prototype.apply = boom('apply') as any;",
      "Function.prototype.bind = boom('bind') as any;",
      "Object.defineProperty = boom('defineProperty') as any;",
      "Object.create = boom('create') as any;",
      "Object.keys = boom('keys') as any;",
      "Object.freeze = boom('freeze') as any;",
      "WeakMap.prototype.set = boom('WeakMap.set') as any;",
      "Map.prototype.get = boom('Map.get') as any;",
      "Set.prototype.add = function (this: Set<unknown>, value: unknown) { note('Set.add ' + typeof value); return this; } as any;",
      "Set.prototype.has = function () { note('Set.has'); return false; } as any;",
      "Array.prototype.sort = function (this: unknown[]) { note('sort ' + JSON.stringify(this)); return this; } as any;",
      "(Array.prototype as any)[Symbol.iterator] = function* () { note('iterate'); };",
      "const echoed = await tools.echo({ b: 1, a: 2 });",
      "console.log({ x: 1 });",
      "let failed;",
      "try { await tools.fail({}); } catch (e: any) { failed = e.name; }",
      "return { echoed, failed, captured };",
    ].join("\n");
    const run = await runWith(toolHost, code, { durable: {} });
    expect(expectSuccess(run)).toEqual({
      echoed: { b: 1, a: 2 },
      failed: "ToolError",
      captured: ["Set.has", "Set.add object"],
    });
    expect(run.logs.map((entry) => entry.message)).toEqual(['{"x":1}']);
    // The patched sort and iterator never run in the runtime: step keys are hashed with the
    // intrinsics it captured first, as the host hashes them again to check each key.
    expect(toolHost.calls.map((call) => [call.method, call.args])).toEqual([
      ["echo", { b: 1, a: 2 }],
      ["fail", {}],
    ]);
    for (const call of toolHost.calls) {
      expect(call.key).toMatch(new RegExp(`^tools\\.${call.method}:[0-9a-f]{32}#0$`));
    }
  });

  it("Category 13 and CVE-2021-23449 (dynamic import): the promise import() returns is the isolate's own and rejects with Not supported", async () => {
    const code = [
      "const p = import('anything');",
      "const settled = await p.then(",
      "  () => 'loaded',",
      "  (e: any) => [e.name, e.message, e.constructor.constructor === Function],",
      ");",
      "const F = p.constructor.constructor;",
      "return { samePromise: p.constructor === Promise, F: F === Function, process: F('return typeof process')(), settled };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      samePromise: true,
      F: true,
      process: "undefined",
      settled: ["Error", "Not supported", true],
    });
  });

  it("Category 14 (trap names on Object.prototype): has, get, construct and the rest never act as traps of the runtime's ArrayBuffer proxies", async () => {
    const code = [
      "const captured: string[] = [];",
      "const traps = ['has', 'get', 'set', 'apply', 'construct', 'getPrototypeOf', 'ownKeys',",
      "  'defineProperty', 'getOwnPropertyDescriptor', 'deleteProperty'];",
      "for (const trap of traps) {",
      "  (Object.prototype as any)[trap] = () => {",
      "    captured.push(trap);",
      "    throw (f: any) => f.constructor('return process')();",
      "  };",
      "}",
      "const outcomes: Record<string, unknown> = {};",
      "const attempts: Record<string, () => unknown> = {",
      "  in: () => 'x' in ArrayBuffer,",
      "  get: () => typeof (ArrayBuffer as any).foo,",
      "  construct: () => new ArrayBuffer(8).byteLength,",
      "  getPrototypeOf: () => Object.getPrototypeOf(ArrayBuffer) === Function.prototype,",
      "  ownKeys: () => Reflect.ownKeys(SharedArrayBuffer).length > 0,",
      "  set: () => { (ArrayBuffer as any).x = 1; return (ArrayBuffer as any).x; },",
      "  apply: () => (ArrayBuffer as any)(8),",
      "};",
      "for (const [name, attempt] of Object.entries(attempts)) {",
      "  try { outcomes[name] = attempt(); }",
      "  catch (e: any) { outcomes[name] = typeof e === 'function' ? 'a trap function' : e.name; }",
      "}",
      "return { captured, outcomes };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      captured: [],
      outcomes: {
        in: false,
        get: "undefined",
        construct: 8,
        getPrototypeOf: true,
        ownKeys: true,
        set: 1,
        apply: "TypeError",
      },
    });
  });

  it("Category 15 and 27 (descriptor values, internal state): nothing reachable from globalThis is an isolated-vm Reference or outside the isolate's prototypes", async () => {
    // Walks every own property descriptor (values, getters, setters) and every prototype from
    // globalThis, without calling a getter.
    const code = [
      "const referenceApi = ['deref', 'derefInto', 'release', 'copy', 'copySync', 'get', 'getSync',",
      "  'set', 'setSync', 'setIgnored', 'delete', 'deleteSync', 'deleteIgnored', 'apply', 'applySync',",
      "  'applyIgnored', 'applySyncPromise'];",
      "const owners: Record<string, unknown> = { Reflect, 'Function.prototype': Function.prototype,",
      "  'WeakRef.prototype': WeakRef.prototype, 'Map.prototype': Map.prototype, 'Set.prototype': Set.prototype,",
      "  'WeakMap.prototype': WeakMap.prototype, 'WeakSet.prototype': WeakSet.prototype,",
      "  'TypedArray.prototype': Object.getPrototypeOf(Uint8Array.prototype) };",
      "const seen = new Set<unknown>();",
      "const queue: unknown[] = [globalThis];",
      "const referenceKeys: string[] = [];",
      "const outside: string[] = [];",
      "while (queue.length > 0) {",
      "  const value = queue.shift() as any;",
      "  if (value === null || (typeof value !== 'object' && typeof value !== 'function') || seen.has(value)) continue;",
      "  seen.add(value);",
      "  let proto = Reflect.getPrototypeOf(value);",
      "  while (proto !== null && proto !== Object.prototype) proto = Reflect.getPrototypeOf(proto);",
      "  if (proto === null && value !== Object.prototype && Reflect.getPrototypeOf(value) !== null) {",
      "    outside.push(String(value.name ?? typeof value));",
      "  }",
      "  for (const key of Reflect.ownKeys(value)) {",
      "    const descriptor = Reflect.getOwnPropertyDescriptor(value, key) as PropertyDescriptor;",
      "    if (typeof key === 'string' && referenceApi.includes(key) && descriptor.value !== undefined) {",
      "      const owner = Object.entries(owners).find(([, object]) => object === value)?.[0] ?? 'unexpected';",
      "      referenceKeys.push(owner + '.' + key);",
      "    }",
      "    queue.push(descriptor.value, descriptor.get, descriptor.set);",
      "  }",
      "  queue.push(Reflect.getPrototypeOf(value));",
      "}",
      "return { walked: seen.size > 500, referenceKeys: referenceKeys.sort(), outside };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      walked: true,
      // ECMAScript's own methods of those names; no object with a Reference's methods.
      referenceKeys: [
        "Function.prototype.apply",
        "Map.prototype.delete",
        "Map.prototype.get",
        "Map.prototype.set",
        "Reflect.apply",
        "Reflect.get",
        "Reflect.set",
        "Set.prototype.delete",
        "TypedArray.prototype.set",
        "WeakMap.prototype.delete",
        "WeakMap.prototype.get",
        "WeakMap.prototype.set",
        "WeakRef.prototype.deref",
        "WeakSet.prototype.delete",
      ],
      outside: [],
    });
  });
});

describe("Tier 3: compound attacks", () => {
  it("Category 16 (SuppressedError from DisposableStack, AsyncDisposableStack and `using` in eval): every error inside is the isolate's", async () => {
    const code = [
      "const climb = (e: any) => e === null ? null",
      "  : [e.name, e.constructor.constructor === Function, e.constructor.constructor('return typeof process')()];",
      "const out: Record<string, unknown> = {};",
      "const stack = new DisposableStack();",
      "stack.defer(() => { throw null; });",
      "stack.defer(() => { (undefined as any).x; });",
      "try { stack.dispose(); } catch (e: any) {",
      "  out.sync = [e instanceof SuppressedError, climb(e.error), climb(e.suppressed)];",
      "}",
      "const asyncStack = new AsyncDisposableStack();",
      "asyncStack.defer(async () => { throw null; });",
      "asyncStack.defer(async () => { (undefined as any).x; });",
      "try { await asyncStack.disposeAsync(); } catch (e: any) {",
      "  out.async = [e instanceof SuppressedError, climb(e.error), climb(e.suppressed)];",
      "}",
      "(globalThis as any).resource = { [Symbol.dispose]() { (undefined as any).x; } };",
      "try { (0, eval)('{ using a = resource; throw null; }'); } catch (e: any) {",
      "  out.evalUsing = [e instanceof SuppressedError, climb(e.error), climb(e.suppressed)];",
      "}",
      "return out;",
    ].join("\n");
    const typeError = ["TypeError", ...ISOLATE_ONLY];
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      sync: [true, null, typeError],
      async: [true, null, typeError],
      evalUsing: [true, typeError, null],
    });
  });

  it("Category 18 (array species self-return): an array whose species returns itself reaches the tool as plain JSON, and the tool's array is a fresh one", async () => {
    const toolHost = createToolHost();
    const code = [
      "const list: any = [1, 2, 3];",
      "function Self() { return list; }",
      "(Self as any)[Symbol.species] = Self;",
      "list.constructor = Self;",
      "Object.defineProperty(Array, Symbol.species, { get: () => Self });",
      "const echoed: any = await tools.echo({ list });",
      "const mapped = list.map((n: number) => n * 10);",
      "return { echoed, fresh: echoed.list.constructor === Array && echoed.list !== list,",
      "  selfReturned: mapped === list, list };",
    ].join("\n");
    expect(expectSuccess(await runWith(toolHost, code))).toEqual({
      echoed: { list: [1, 2, 3] },
      fresh: true,
      selfReturned: true,
      list: [10, 20, 30],
    });
    expect(toolHost.calls.map((call) => call.args)).toEqual([{ list: [1, 2, 3] }]);
  });

  it("Category 19 (prepareStackTrace fallback via Array.fromAsync): there is no host formatter to fall back on, and the rejections are the isolate's", async () => {
    const code = [
      "const symbolStack = await Array.fromAsync([0], () => {",
      "  const e = new Error('x');",
      "  (e as any).name = Symbol('s');",
      "  return e.stack;",
      "}).then((values) => ['fulfilled', typeof values[0]], (e: any) => ['rejected', e.name]);",
      "(globalThis as any).resource = { [Symbol.dispose]() { (undefined as any).x; } };",
      "const usingInside = await Array.fromAsync([0], () => {",
      "  (0, eval)('{ using a = resource; throw null; }');",
      "}).then(() => 'fulfilled', (e: any) => [e.name, e.error.name, e.error.constructor.constructor === Function]);",
      "let removed;",
      "try { delete (Error as any).prepareStackTrace; removed = true; } catch (e: any) { removed = e.name; }",
      "const descriptor = Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace');",
      "return { symbolStack, usingInside, removed, descriptor: [typeof descriptor?.value, descriptor?.writable, descriptor?.configurable] };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      symbolStack: ["fulfilled", "string"],
      usingInside: ["SuppressedError", "TypeError", true],
      removed: "TypeError",
      descriptor: ["undefined", false, false],
    });
  });

  it("Category 20 (intrinsic prototype pollution): freezing and polluting every prototype in the isolate leaves tool calls working and the host's intrinsics untouched", async () => {
    const toolHost = createToolHost();
    const code = [
      "for (const C of [Object, Array, Function, Promise, Error, String, Map, Set]) {",
      "  (C.prototype as any).polluted = 'yes';",
      "}",
      "(Array.prototype as any).push = null;",
      "Object.freeze(Object.prototype);",
      "Object.freeze(Array.prototype);",
      "Object.freeze(Promise.prototype);",
      "Object.freeze(Error.prototype);",
      "const echoed = await tools.echo({ x: 1 });",
      "let failed;",
      "try { await tools.fail({}); } catch (e: any) { failed = [e.name, e.server]; }",
      "return { echoed, failed };",
    ].join("\n");
    expect(expectSuccess(await runWith(toolHost, code))).toEqual({
      echoed: { x: 1 },
      failed: ["ToolError", "tools"],
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.isFrozen(Object.prototype)).toBe(false);
    expect(typeof Array.prototype.push).toBe("function");
    expect(Object.getPrototypeOf(toolHost.calls[0]?.args)).toBe(Object.prototype);
  });

  it.each([
    [
      "an async function whose Symbol-named error's stack is read, then throws",
      "(async function () {\n  const e = new Error('async');\n  (e as any).name = Symbol();\n  e.stack;\n  (null as any).x;\n})();\nreturn 'survived';",
      { code: "runtime_error", name: "TypeError", message: "Unhandled promise rejection" },
    ],
    [
      "an async generator that throws on next()",
      "(async function* () { throw new Error('boom'); })().next();\nreturn 'survived';",
      { code: "runtime_error", message: "Unhandled promise rejection: boom" },
    ],
    [
      "a Promise executor that throws",
      "new Promise(() => { (null as any).x; });\nreturn 'survived';",
      { code: "runtime_error", name: "TypeError", message: "Unhandled promise rejection" },
    ],
    [
      "`await using` in eval whose disposer throws a Symbol",
      "(0, eval)(\"(async () => { await using x = { [Symbol.asyncDispose]() { throw Symbol(); } }; })()\");\nreturn 'survived';",
      { code: "runtime_error", message: "Unhandled promise rejection" },
    ],
    [
      "all of them after an await",
      "await tools.echo({});\n(async function* () { throw new Error('boom'); })().next();\nnew Promise(() => { (null as any).x; });\nawait tools.echo({});\nreturn 'survived';",
      "survived",
    ],
  ] as const)(
    "Category 22 (unhandled rejections, host DoS): %s ends the run as stated, and the host's unhandledRejection never fires",
    async (_what, code, expected) => {
      let hostRejections = 0;
      const spy = () => {
        hostRejections++;
      };
      process.on("unhandledRejection", spy);
      try {
        const run = await runWith(createToolHost(), code);
        if (typeof expected === "string") expect(expectSuccess(run)).toBe(expected);
        else expectFailure(run, expected);
        // The host reports unhandled rejections after its microtasks: give it a turn.
        await new Promise((resolve) => setImmediate(resolve));
      } finally {
        process.off("unhandledRejection", spy);
      }
      expect(hostRejections).toBe(0);
    },
  );

  it("Category 23 (unbounded allocation): typed arrays and buffers past memoryMb are a catchable RangeError, the host's memory intact", async () => {
    const code = [
      "const out: string[] = [];",
      "const makes = [",
      "  () => new Uint8Array(2 ** 32),",
      "  () => new Float64Array(2 ** 28),",
      "  () => new SharedArrayBuffer(2 ** 31),",
      "  () => new ArrayBuffer(8).transfer(2 ** 31),",
      "  () => new Uint8Array(64 * 2 ** 20),",
      "];",
      "for (const make of makes) {",
      "  try { out.push(String(make().byteLength)); } catch (e: any) { out.push(e.name + ': ' + e.message); }",
      "}",
      "return out;",
    ].join("\n");
    const { value: run, rss } = await peakRssDuring(() =>
      runWith(createToolHost(), code, { limits: { memoryMb: 32 } }),
    );
    expect(expectSuccess(run)).toEqual(
      Array.from({ length: 5 }, () => "RangeError: Array buffer allocation failed"),
    );
    expect(rss).toBeLessThan(1.5 * 1024 * MIB);
  });

  it("Category 26 (null-prototype values): thrown, caught, resolved, returned and sent to a tool, they stay the program's plain values", async () => {
    const code = [
      "const o = Object.create(null);",
      "o.message = 'null-proto';",
      "try { throw o; } catch (e: any) { e.f = tools.echo; }",
      "const echoed = await tools.echo(Object.assign(Object.create(null), { x: 1 }));",
      "const same = await Promise.resolve(o).then((v: any) => v === o);",
      "return { f: o.f === tools.echo, echoed, plainEchoed: Object.getPrototypeOf(echoed) === Object.prototype,",
      "  same, proto: Object.getPrototypeOf(o), back: Object.assign(Object.create(null), { a: 1 }) };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      f: true,
      echoed: { x: 1 },
      plainEchoed: true,
      same: true,
      proto: null,
      back: { a: 1 },
    });
    const thrown = "throw Object.assign(Object.create(null), { message: 'null-proto thrown' });";
    expectFailure(await runWith(createToolHost(), thrown), {
      code: "runtime_error",
      name: "Error",
      message: "null-proto thrown",
      line: null,
    });
  });

  it("Category 28 (runtime containers and Array.prototype setters): a setter on index 0 sees only a step key, replays still answer, and the run under-reports them", async () => {
    const first = createToolHost();
    const calls = "const r = await tools.echo({ a: 1 });\nconst s = await tools.echo({ a: 2 });";
    expectSuccess(await runWith(first, `${calls}\nreturn [r, s];`, { durable: {} }));
    const replayedKey = first.calls[0]?.key as string;
    const replay = JSON.stringify({ [replayedKey]: { a: "replayed" } });

    const toolHost = createToolHost();
    const code = [
      "let captured = '';",
      "for (let i = 0; i < 4; i++) {",
      "  Object.defineProperty(Array.prototype, i, {",
      "    set(value) { captured += i + ':' + typeof value + ':' + value + ';'; },",
      "    get() { return undefined; },",
      "    configurable: true,",
      "  });",
      "}",
      calls,
      "return { r, s, captured };",
    ].join("\n");
    const run = await runWith(toolHost, code, { durable: { replay } });
    expect(expectSuccess(run)).toEqual({
      r: { a: "replayed" },
      s: { a: 2 },
      captured: `0:string:${replayedKey};`,
    });
    expect(toolHost.calls.map((call) => call.args)).toEqual([{ a: 2 }]);
    // The runtime's list of replayed keys took the setter's path: the program hides its own
    // replay from its job's accounting, nothing more.
    expect(run.replayed).toEqual([]);
  });

  it("Category 29 and CVE-2026-45411 (async generator yield*-return thenable): at every recursion depth the value that surfaces is the isolate's", async () => {
    const code = [
      "class E extends Error {}",
      "function so(depth: number): never {",
      "  if (depth > 0) so(depth - 1);",
      "  const e = new E();",
      "  e.stack;",
      "  throw e;",
      "}",
      "async function* helper() {",
      "  yield* { [Symbol.asyncIterator]: () => ({ next: (v: any) => ({ value: v, done: false }) }) } as any;",
      "}",
      "async function surface(f: () => void) {",
      "  const it = helper();",
      "  await it.next();",
      "  const result: any = await it.return({ then(resolve: any) { f(); resolve(); } } as any);",
      "  return result.value;",
      "}",
      "const kinds = new Set<string>();",
      "let foreign = 0;",
      "let min = 0, max = 100_000;",
      "while (min < max) {",
      "  const mid = (min + max) >> 1;",
      "  const e: any = await surface(() => so(mid));",
      "  kinds.add(e?.constructor?.name);",
      "  if (!(e instanceof Error) || e.constructor.constructor !== Function",
      "    || e.constructor.constructor('return typeof process')() !== 'undefined') foreign++;",
      "  if (e instanceof E) min = mid + 1; else max = mid;",
      "}",
      "return { kinds: [...kinds].sort(), foreign };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      kinds: ["E", "RangeError"],
      foreign: 0,
    });
  });

  it("Category 30 (prototype mutation via the __proto__ setter): severing Error's and the runtime's classes from their chains leaves ToolErrors the isolate's and complete", async () => {
    const code = [
      "const getProto = ({} as any).__lookupGetter__('__proto__');",
      "const setProto = ({} as any).__lookupSetter__('__proto__');",
      "const out: unknown[] = [];",
      "// ToolError.prototype → Error.prototype: cut Error.prototype loose from Object.prototype.",
      "try { await tools.fail({}); } catch (e) { setProto.call(getProto.call(getProto.call(e)), null); }",
      "try { await tools.fail({}); } catch (e: any) {",
      "  const F = e.constructor.constructor;",
      "  out.push([e.name, e.message, e instanceof ToolError, F === Function, F('return typeof process')()]);",
      "}",
      "setProto.call(TypeError.prototype, null);",
      "try { (null as any).x; } catch (e: any) { out.push([e.constructor === TypeError, e.constructor.constructor === Function]); }",
      "setProto.call(ToolError.prototype, null);",
      "console.log(JSON.stringify(out));",
      "await tools.fail({});",
    ].join("\n");
    const run = await runWith(createToolHost(), code);
    const error = expectFailure(run, {
      code: "tool_error",
      name: "ToolError",
      message: "the tool failed on purpose",
      line: 14,
    });
    expect(error).toMatchObject({ server: "tools", tool: "fail" });
    expect(run.logs.map((entry) => JSON.parse(entry.message))).toEqual([
      [
        ["ToolError", "the tool failed on purpose", true, ...ISOLATE_ONLY],
        [true, true],
      ],
    ]);
  });

  it("Category 31 (species hijack of an internal then): a Promise subclass's species gets V8's capability and the isolate's ToolError, never the runtime's", async () => {
    const code = [
      "const got: unknown[] = [];",
      "const { promise: done, resolve: finish } = Promise.withResolvers<void>();",
      "let ct: any = function (executor: any) {",
      "  executor(",
      "    (value: unknown) => { got.push(['resolved', value]); finish(); },",
      "    (e: any) => {",
      "      const F = e.constructor.constructor;",
      "      got.push(['rejected', e.name, e instanceof ToolError, F === Function, F('return typeof process')()]);",
      "      finish();",
      "    },",
      "  );",
      "};",
      "class FakePromise extends Promise<unknown> {",
      "  static get [Symbol.species]() { return ct; }",
      "}",
      "const p = new FakePromise((resolve) => resolve(tools.fail({})));",
      "p.then();",
      "await done;",
      "ct = null;",
      "const echoed = await tools.echo({ after: 1 });",
      "return { got, echoed };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      got: [["rejected", "ToolError", true, ...ISOLATE_ONLY]],
      echoed: { after: 1 },
    });
  });

  it("Category 32 (writes through an inheriting receiver): nothing lands on a namespace, and the program's own objects take their writes", async () => {
    const code = [
      "const out: Record<string, unknown> = {};",
      "const child: any = Object.create(tools);",
      "try { child.echo = () => 'fake'; out.assign = 'assigned'; } catch (e: any) { out.assign = e.message; }",
      "out.reflectSet = Reflect.set(tools, 'fail', () => 'fake', {});",
      "try { Object.assign(Object.create(tools), { echo: 1 }); out.objectAssign = 'assigned'; }",
      "catch (e: any) { out.objectAssign = e.name; }",
      "const deep: any = Object.create(Object.create(tools));",
      "try { deep.slow = 1; out.deep = 'assigned'; } catch (e: any) { out.deep = e.name; }",
      "child.fresh = 1;",
      "out.fresh = [Object.hasOwn(child, 'fresh'), 'fresh' in tools];",
      "Object.defineProperty(child, 'echo', { value: () => 'shadowed' });",
      "out.shadowed = child.echo();",
      "out.real = await tools.echo({ real: true });",
      "out.names = Object.keys(tools);",
      "return out;",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      assign: "Cannot assign to read only property 'echo' of object '[object Object]'",
      reflectSet: false,
      objectAssign: "TypeError",
      deep: "TypeError",
      fresh: [true, false],
      shadowed: "shadowed",
      real: { real: true },
      names: ["echo", "slow", "stubborn", "fail", "bigint"],
    });
  });
});

describe("vm2 advisories", () => {
  it("CVE-2022-36067 and CVE-2023-29017 (prepareStackTrace): a global Error swapped for a formatter is never consulted, for synchronous or async errors", async () => {
    const code = [
      "const fake: any = {",
      "  calls: 0,",
      "  prepareStackTrace(_e: unknown, sites: any[]) { fake.calls++; return sites.map((s) => typeof s.getThis()); },",
      "};",
      "(globalThis as any).Error = fake;",
      "const out: unknown[] = [];",
      "try { (null as any).x; } catch (e: any) { out.push(typeof e.stack, e.constructor.name); }",
      "try { await (async () => { (null as any).y; })(); } catch (e: any) { out.push(typeof e.stack, e.constructor.name); }",
      "try { await tools.fail({}); } catch (e: any) { out.push(e.name, typeof e.stack); }",
      "return { out, calls: fake.calls };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      out: ["string", "TypeError", "string", "TypeError", "ToolError", "string"],
      calls: 0,
    });
  });

  it("CVE-2023-30547 (a proxy whose getPrototypeOf overflows the stack): caught, it is the isolate's RangeError; thrown out, it is reported as unreadable", async () => {
    const proxy =
      "new Proxy({}, { getPrototypeOf() { (function deep(): void { new Error().stack; deep(); })(); return null; } })";
    const caught = [
      `try { throw ${proxy}; }`,
      "catch (e: any) {",
      "  try { e instanceof Error; return 'no throw'; }",
      "  catch (x: any) { return [x.name, x.constructor === RangeError, x.constructor.constructor('return typeof process')()]; }",
      "}",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), caught))).toEqual([
      "RangeError",
      true,
      "undefined",
    ]);
    expectFailure(await runWith(createToolHost(), `throw ${proxy};`), {
      code: "runtime_error",
      message: "The program threw a value whose properties cannot be read",
    });
  });

  it("CVE-2023-32314 (a proxied error name): the name's toString trap gets only the isolate's arrays", async () => {
    const code = [
      "const seen: unknown[] = [];",
      "const err = new Error('m');",
      "(err as any).name = {",
      "  toString: new Proxy(() => 'Named', {",
      "    apply(_target, _self, args: any) {",
      "      const F = args.constructor.constructor;",
      "      seen.push([args.constructor === Array, F === Function, F('return typeof process')()]);",
      "      return 'Named';",
      "    },",
      "  }),",
      "};",
      "const stack = String(err.stack).split('\\n')[0];",
      "const text = String(err);",
      "return { seen, stack, text };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      seen: [
        [true, ...ISOLATE_ONLY],
        [true, ...ISOLATE_ONLY],
      ],
      stack: "Named: m",
      text: "Named: m",
    });
  });
});

describe("limits of isolated-vm itself", () => {
  const fixture = fileURLToPath(new URL("./fixtures/run-payload.ts", import.meta.url));

  /** Runs `code` in a child Node process; resolves with how the process ended and what it said. */
  function runInChild(code: string): Promise<{
    exitCode: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }> {
    // Only the crash may end the run: generous deadlines, the default memory limit. Core dumps
    // are turned off, as the process is expected to abort with a heap of over a gigabyte.
    const limits = JSON.stringify({ timeoutMs: 300_000, cpuMs: 300_000 });
    const child = spawn(
      "sh",
      [
        "-c",
        'ulimit -c 0 && exec "$0" "$@"',
        process.execPath,
        "--no-node-snapshot",
        fixture,
        code,
        limits,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    return new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (exitCode, signal) => resolve({ exitCode, signal, stdout, stderr }));
    });
  }

  it("Category 23: a dictionary array or object grown past V8's table size kills the process that hosts the isolate (isolated-vm#107): the platform's answer is the worker's bounded redeliveries", async () => {
    // V8 treats a hash table that cannot grow as a fatal out-of-memory error of the whole
    // process, whatever the isolate's memory limit. A worker that dies this way loses its job
    // lock; the job is redelivered and, after a bounded number of deaths, failed for good.
    // If this test starts failing, isolated-vm contains the crash now: assert the clean
    // outcome instead and move these payloads to the in-process tests.
    const payloads = [
      "return new Array(2 ** 31).fill(0).length;",
      "const a: any = {};\nfor (let i = 0; ; i++) a[i * 7 + 0.5] = i;",
    ];
    const ends = await Promise.all(payloads.map(runInChild));
    for (const end of ends) {
      expect(end.stdout, end.stderr.slice(-2000)).toBe("");
      expect(end.signal === "SIGABRT" || (end.exitCode ?? 0) !== 0, JSON.stringify(end)).toBe(true);
      expect(end.stderr).toContain("is_heap_oom = 1");
    }
  }, 240_000);
});
