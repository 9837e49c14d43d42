import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, runProgram } from "../src/index.ts";
import {
  createToolHost,
  expectFailure,
  expectHostHealthy,
  expectSuccess,
  peakRssDuring,
  runWith,
} from "./helpers.ts";

/**
 * Programs written to hurt the sandbox. In each, the host process survives, the run ends with
 * a precise outcome (an error code, a message that says what to fix, and the line and column
 * when the error has a place in the program), and a normal run afterwards still succeeds
 * (`afterEach`). Limits are small so kills come fast; each set leaves one way to die, so the
 * outcome does not depend on how busy the machine is. Nothing here asserts a duration.
 */

/** Only the wall-clock deadline can stop the program. */
const WALL = { timeoutMs: 300, cpuMs: 60_000 };
/** Only the CPU budget can. */
const CPU = { timeoutMs: 60_000, cpuMs: 200 };
/** Only the memory limit can. */
const MEMORY = { memoryMb: 32, timeoutMs: 60_000, cpuMs: 60_000 };

const MIB = 2 ** 20;

/** The 1-based line and column of the first `fragment` in `code`, where V8 reports an error. */
function locate(code: string, fragment: string): { line: number; column: number } {
  const index = code.indexOf(fragment);
  if (index < 0) throw new Error(`"${fragment}" is not in the program`);
  const before = code.slice(0, index).split("\n");
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

afterEach(async () => {
  await expectHostHealthy();
});

describe("programs that never stop", () => {
  it("a top-level `while (true) {}` runs into the deadline", async () => {
    const run = await runWith(createToolHost(), "while (true) {}", { limits: WALL });
    expectFailure(run, {
      code: "timeout",
      name: "TimeoutError",
      message: "ran past its 300 ms deadline (timeoutMs)",
      line: null,
    });
  });

  it("spinning after an await still runs into the deadline (not only synchronous code)", async () => {
    const toolHost = createToolHost();
    const run = await runWith(toolHost, "await tools.echo({});\nwhile (true) {}", { limits: WALL });
    expectFailure(run, { code: "timeout", message: "(timeoutMs)" });
    expect(toolHost.calls).toHaveLength(1);
  });

  it("spinning after an await is stopped by the CPU budget", async () => {
    const run = await runWith(createToolHost(), "await tools.echo({});\nwhile (true) {}", {
      limits: CPU,
    });
    expectFailure(run, {
      code: "cpu_limit",
      name: "CpuLimitError",
      message: "used more than 200 ms of CPU (cpuMs)",
      line: null,
    });
  });

  it("a microtask storm that grows a promise chain hits the memory limit", async () => {
    const code =
      "const f = (): Promise<unknown> => Promise.resolve().then(f);\nf();\nawait new Promise(() => {});";
    const run = await runWith(createToolHost(), code, { limits: MEMORY });
    expectFailure(run, {
      code: "memory_limit",
      name: "MemoryLimitError",
      message: "more than 32 MB of memory (memoryMb)",
    });
  });

  it("a flat microtask storm is stopped by the CPU budget", async () => {
    const code =
      "const f = () => {\n  Promise.resolve().then(f);\n};\nf();\nawait new Promise(() => {});";
    expectFailure(await runWith(createToolHost(), code, { limits: CPU }), { code: "cpu_limit" });
  });

  it("a flat microtask storm runs into the deadline", async () => {
    const code = "const f = () => {\n  Promise.resolve().then(f);\n};\nf();";
    expectFailure(await runWith(createToolHost(), code, { limits: WALL }), { code: "timeout" });
  });

  it("an endless async recursion is stopped by the CPU budget", async () => {
    const code =
      "const f = async () => {\n  await null;\n  f();\n};\nf();\nawait new Promise(() => {});";
    expectFailure(await runWith(createToolHost(), code, { limits: CPU }), { code: "cpu_limit" });
  });

  it("a storm left behind after an await does not hang the host; the result stands", async () => {
    // The result leaves the isolate while the storm goes on; the host used to wait for the
    // isolate's lock to take a last heap sample, which blocked its thread (and timers) forever.
    const code =
      "await tools.echo({});\nconst f = () => {\n  Promise.resolve().then(f);\n};\nf();\nreturn 'done';";
    expect(expectSuccess(await runWith(createToolHost(), code, { limits: WALL }))).toBe("done");
  });

  it("a storm after an await with nothing left to return runs into the deadline", async () => {
    const code =
      "await tools.echo({});\nconst f = () => {\n  Promise.resolve().then(f);\n};\nf();\nawait new Promise(() => {});";
    expectFailure(await runWith(createToolHost(), code, { limits: WALL }), { code: "timeout" });
  });

  it("a promise that never settles runs into the deadline", async () => {
    const run = await runWith(createToolHost(), "await new Promise(() => {});", { limits: WALL });
    expectFailure(run, { code: "timeout" });
  });

  it("a result with an endless getter runs into the deadline", async () => {
    const run = await runWith(createToolHost(), "return { get x() { while (true) {} } };", {
      limits: WALL,
    });
    expectFailure(run, { code: "timeout" });
  });

  it("an argument whose toJSON never returns is stopped by the CPU budget", async () => {
    const toolHost = createToolHost();
    const code = "await tools.echo({ toJSON() { while (true) {} } } as any);";
    expectFailure(await runWith(toolHost, code, { limits: CPU }), { code: "cpu_limit" });
    expect(toolHost.calls).toHaveLength(0);
  });

  it("`Atomics.wait` on a SharedArrayBuffer runs into the deadline", async () => {
    const code = "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\nreturn 1;";
    expectFailure(await runWith(createToolHost(), code, { limits: WALL }), { code: "timeout" });
  });

  it("`Atomics.wait` counts as CPU for isolated-vm, so the CPU budget stops it too", async () => {
    const code = "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\nreturn 1;";
    expectFailure(await runWith(createToolHost(), code, { limits: CPU }), { code: "cpu_limit" });
  });

  it("an endless console.log loop is capped at maxLogBytes, then runs into the deadline", async () => {
    const maxLogBytes = 4096;
    const run = await runWith(
      createToolHost(),
      "let i = 0;\nwhile (true) console.log('line', i++);",
      {
        limits: { ...WALL, maxLogBytes },
      },
    );
    expectFailure(run, { code: "timeout" });
    const last = run.logs.at(-1);
    expect(last).toMatchObject({
      level: "warn",
      message: `[turtle] log limit of ${maxLogBytes} bytes reached; later output dropped`,
    });
    const kept = run.logs.slice(0, -1);
    expect(kept.map((entry) => entry.message)).toEqual(kept.map((_entry, i) => `line ${i}`));
    const bytes = kept.reduce((sum, entry) => sum + Buffer.byteLength(entry.message) + 1, 0);
    expect(bytes).toBeLessThanOrEqual(maxLogBytes);
    expect(bytes).toBeGreaterThan(maxLogBytes - 20);
  });
});

describe("programs that eat memory", () => {
  it("a heap bomb hits the memory limit", async () => {
    const code = "const kept = [];\nwhile (true) kept.push({ n: Math.random(), list: [1, 2, 3] });";
    const run = await runWith(createToolHost(), code, { limits: MEMORY });
    expectFailure(run, {
      code: "memory_limit",
      message: "used more than 32 MB of memory (memoryMb) and was stopped",
      line: null,
    });
    expect(run.stats.heapPeakBytes).toBeGreaterThanOrEqual(32 * MIB);
  });

  it("100 ArrayBuffers of 16 MB kept alive fail inside the limit, the host's memory intact", async () => {
    const code =
      "const kept = [];\nfor (let i = 0; i < 100; i++) kept.push(new ArrayBuffer(16 * 2 ** 20));\nreturn kept.length;";
    const { value: run, rss } = await peakRssDuring(() =>
      runWith(createToolHost(), code, { limits: MEMORY }),
    );
    // isolated-vm's allocator refuses the buffer past memoryMb: a catchable RangeError.
    expectFailure(run, {
      code: "runtime_error",
      name: "RangeError",
      message: "Array buffer allocation failed",
      ...locate(code, "new ArrayBuffer"),
    });
    expect(rss).toBeLessThan(1.5 * 1024 * MIB);
  });

  it("WebAssembly is not there: its memories grew past memoryMb (3 GB in a 32 MB isolate)", async () => {
    const code = "return typeof WebAssembly;";
    expect(expectSuccess(await runWith(createToolHost(), code))).toBe("undefined");
  });

  it("resizable ArrayBuffers are refused: they committed memory past memoryMb", async () => {
    const code = "const b = new ArrayBuffer(0, { maxByteLength: 2 ** 30 });\nb.resize(2 ** 30);";
    const { value: run, rss } = await peakRssDuring(() =>
      runWith(createToolHost(), code, { limits: MEMORY }),
    );
    expectFailure(run, {
      code: "runtime_error",
      name: "TypeError",
      message: "resizable ArrayBuffers (maxByteLength) are not available in the sandbox",
      ...locate(code, "new ArrayBuffer"),
    });
    expect(rss).toBeLessThan(1.5 * 1024 * MIB);
  });

  it("growable SharedArrayBuffers are refused too", async () => {
    const code = "new SharedArrayBuffer(0, { maxByteLength: 2 ** 30 }).grow(2 ** 30);";
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      message: "resizable SharedArrayBuffers (maxByteLength) are not available",
      line: 1,
      column: 1,
    });
  });

  it("the original ArrayBuffer constructors are out of reach: every way to them is guarded", async () => {
    const code = [
      "const attempts = {",
      "  viaPrototype: () => new (new Uint8Array(1).buffer.constructor as any)(0, { maxByteLength: 64 }),",
      "  viaSubclass: () => new (class extends ArrayBuffer {})(0, { maxByteLength: 64 } as any),",
      "  viaReflect: () => Reflect.construct(ArrayBuffer, [0, { maxByteLength: 64 }]),",
      "  viaSlice: () => { const b = new ArrayBuffer(8); return (b.slice(0) as any).resizable ? 'resizable' : 'fixed'; },",
      "};",
      "const out: Record<string, string> = {};",
      "for (const [name, attempt] of Object.entries(attempts)) {",
      "  try { out[name] = String(attempt()); } catch (e: any) { out[name] = e.name; }",
      "}",
      "// A getter that says nothing the first time and 2 ** 30 the second gets nowhere.",
      "let reads = 0;",
      "const sly = new Proxy({}, { has: () => false, get: () => (reads++ ? 2 ** 30 : undefined) });",
      "const b = new ArrayBuffer(8, sly as any);",
      "return { out, slyResizable: b.resizable, sameConstructor: b.constructor === ArrayBuffer,",
      "  isInstance: new Uint8Array(4).buffer instanceof ArrayBuffer, isView: ArrayBuffer.isView(new Uint8Array(1)) };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      out: {
        viaPrototype: "TypeError",
        viaSubclass: "TypeError",
        viaReflect: "TypeError",
        viaSlice: "fixed",
      },
      slyResizable: false,
      sameConstructor: true,
      isInstance: true,
      isView: true,
    });
  });

  it("a huge string spread hits the memory limit", async () => {
    const run = await runWith(createToolHost(), "return [...'x'.repeat(2 ** 28)].length;", {
      limits: MEMORY,
    });
    expectFailure(run, { code: "memory_limit", message: "(memoryMb)" });
  });

  it("a string past V8's maximum length is a RangeError at its line", async () => {
    const code = "const s = 'x'.repeat(2 ** 30);\nreturn s.length;";
    expectFailure(await runWith(createToolHost(), code, { limits: MEMORY }), {
      code: "runtime_error",
      name: "RangeError",
      message: "Invalid string length",
      ...locate(code, "repeat"),
    });
  });

  it("a 500 MB tool argument is refused before the tool is called", async () => {
    const toolHost = createToolHost();
    const code = "const s = 'x'.repeat(500 * 2 ** 20);\nawait tools.echo({ s });\nreturn 1;";
    const run = await runWith(toolHost, code, {
      limits: { memoryMb: 1024, timeoutMs: 30_000, cpuMs: 30_000 },
    });
    // Building the JSON inside a 1 GB isolate may itself run out of memory; both are clear.
    if (!run.ok && run.error.code === "memory_limit") {
      expectFailure(run, { code: "memory_limit", message: "(memoryMb)" });
    } else {
      expectFailure(run, {
        code: "limit_exceeded",
        name: "LimitError",
        message: `tools.echo(): its argument is 524288008 bytes, over the ${DEFAULT_LIMITS.maxArgBytes}-byte limit (maxArgBytes)`,
        ...locate(code, "echo({ s })"),
      });
    }
    expect(toolHost.calls).toHaveLength(0);
  });
});

describe("programs that fail in awkward ways", () => {
  it("infinite recursion is a RangeError with the program's location", async () => {
    const code = "const down = (n: number): number => down(n + 1) + 1;\nreturn down(0);";
    const error = expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      name: "RangeError",
      message: "Maximum call stack size exceeded",
      line: 1,
    });
    // The innermost frame's column is wherever V8's stack check fired inside `down`.
    expect(error.column).toBeGreaterThan(code.indexOf("=>"));
    expect(error.stack).toContain("at down (program.ts:1:");
  });

  it.each([
    ["42", "Uncaught 42"],
    ['"boom"', 'Uncaught "boom"'],
    ["null", "Uncaught null"],
    ["undefined", "Uncaught undefined"],
    ["{}", "Uncaught {}"],
    ["{ reason: 'why' }", 'Uncaught {"reason":"why"}'],
    ["[1, 2]", "Uncaught [1,2]"],
    ["Symbol('s')", "Uncaught Symbol(s)"],
    ["{ message: 'a message' }", "a message"],
  ])("`throw %s` is a runtime_error naming the value", async (value, message) => {
    const run = await runWith(createToolHost(), `throw ${value};`);
    // A thrown non-Error carries no stack, so there is no location to report.
    expectFailure(run, { code: "runtime_error", name: "Error", message, line: null });
  });

  it("throwing an object with an endless `message` getter runs into the deadline", async () => {
    const run = await runWith(createToolHost(), "throw { get message() { while (true) {} } };", {
      limits: WALL,
    });
    expectFailure(run, { code: "timeout" });
  });

  it.each([
    ["a getter that throws", "throw { get message() { throw new Error('inner'); } };"],
    ["a proxy whose traps throw", "throw new Proxy({}, { get() { throw new Error('trap'); } });"],
    ["a revoked proxy", "const p = Proxy.revocable({}, {});\np.revoke();\nthrow p.proxy;"],
    ["a name that cannot be a string", "throw { name: { toString() { throw 1; } } };"],
  ])("throwing %s is reported as unreadable", async (_what, code) => {
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      message: "The program threw a value whose properties cannot be read",
    });
  });

  it("an unhandled rejection in the program's synchronous start fails the run at its line", async () => {
    // isolated-vm fails the evaluation when a rejection is still unhandled at the end of its
    // first task (the program's synchronous start and the microtasks after it).
    const code = "Promise.reject(new Error('nobody caught me'));\nreturn 1;";
    const error = expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      name: "Error",
      message: "Unhandled promise rejection: nobody caught me",
      ...locate(code, "new Error"),
    });
    // isolated-vm appends the host's frames to this error; none of them may reach the caller.
    expect(error.stack).toBe("Error: nobody caught me\n    at program.ts:1:16");
  });

  it("an unhandled rejection of a non-Error says so too", async () => {
    expectFailure(await runWith(createToolHost(), "Promise.reject(42);\nreturn 1;"), {
      code: "runtime_error",
      message: "Unhandled promise rejection: 42",
      line: null,
    });
  });

  it("an unhandled rejection after a tool call goes unnoticed: the run succeeds", async () => {
    // isolated-vm only reports rejections at the end of a task the host started; the tasks
    // that deliver tool results are the guest's, so later ones are never seen.
    const code =
      "tools.fail({});\nawait tools.slow({ ms: 20 });\nPromise.reject(new Error('x'));\nawait tools.echo({});\nreturn 1;";
    expect(expectSuccess(await runWith(createToolHost(), code))).toBe(1);
  });

  it("a rejection handled later (a fan-out awaited in order) is fine", async () => {
    const code = [
      "const pending = [tools.slow({ ms: 30 }), tools.fail({}), tools.echo({ n: 3 })];",
      "const out = [];",
      "for (const p of pending) {",
      "  try { out.push(await p); } catch (e: any) { out.push(e.name); }",
      "}",
      "return out;",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual([
      { slept: 30 },
      "ToolError",
      { n: 3 },
    ]);
  });

  it("an error inside eval'd code is placed at the eval call", async () => {
    const code = "const a = 1;\n  eval('\\n\\nnull.x');";
    const error = expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      name: "TypeError",
      ...locate(code, "eval("),
    });
    expect(error.stack).toContain("eval at <anonymous> (program.ts:2:3)");
  });

  it("an error inside a `new Function` body is placed where the function was made", async () => {
    const code = "const f = new Function('a', 'return a.b.c');\nf(1);";
    const error = expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      ...locate(code, "new Function"),
    });
    expect(error.stack).toContain(`program.ts:2:1`);
  });

  it("eval of a source larger than memoryMb / 8 is refused by isolated-vm", async () => {
    const code = "const source = '1+'.repeat(3 * 2 ** 20) + '1';\nreturn eval(source);";
    expectFailure(await runWith(createToolHost(), code, { limits: MEMORY }), {
      code: "runtime_error",
      name: "EvalError",
      message: "Code generation from strings disallowed",
      line: 2,
    });
  });
});

describe("results the host cannot take", () => {
  it("a 100,000-deep object is a result_error saying it is nested too deeply", async () => {
    const code = "let o: any = {};\nfor (let i = 0; i < 100_000; i++) o = { o };\nreturn o;";
    expectFailure(await runWith(createToolHost(), code), {
      code: "result_error",
      name: "ResultError",
      message: "The program's result is not usable: it is nested too deeply to serialize as JSON",
      line: null,
    });
  });

  it("a 100,000-deep array too", async () => {
    const code = "let o: any = [];\nfor (let i = 0; i < 100_000; i++) o = [o];\nreturn o;";
    expectFailure(await runWith(createToolHost(), code), {
      code: "result_error",
      message: "too deeply",
    });
  });

  it("a cyclic result is a result_error naming the cycle", async () => {
    const code = "const o: any = { name: 'loop' };\no.self = o;\nreturn o;";
    expectFailure(await runWith(createToolHost(), code), {
      code: "result_error",
      message: /Converting circular structure to JSON[\s\S]*property 'self' closes the circle/,
    });
  });

  it.each([
    ["a function", "return () => 1;", "it contains a function, which JSON cannot represent"],
    ["a nested function", "return { a: [{ f() {} }] };", "it contains a function"],
    ["a BigInt", "return { n: 10n };", "it contains a BigInt, which JSON cannot represent"],
    [
      "a Map",
      "return new Map([['a', 1]]);",
      "it contains a Map, which JSON cannot represent; return Object.fromEntries(map)",
    ],
    [
      "a Set",
      "return { s: new Set([1]) };",
      "it contains a Set, which JSON cannot represent; return [...set]",
    ],
    ["a Symbol", "return Symbol('s');", "it contains a Symbol, which JSON cannot represent"],
    ["a throwing toJSON", "return { toJSON() { throw new Error('nope'); } };", "nope"],
    [
      "a throwing proxy",
      "return new Proxy({}, { ownKeys() { throw new Error('trap'); } });",
      "trap",
    ],
    [
      "5 MB of JSON",
      "return 'x'.repeat(5 * 2 ** 20);",
      "it is 5242882 bytes of JSON, over the 4194304-byte limit (maxResultBytes)",
    ],
  ])("returning %s is a result_error that says what to do", async (_what, code, message) => {
    expectFailure(await runWith(createToolHost(), code), {
      code: "result_error",
      name: "ResultError",
      message: `The program's result is not usable: ${message}`,
      line: null,
    });
  });

  it("values JSON has its own answer for come back as JSON gives them", async () => {
    const code = "return [undefined, NaN, Infinity, -0, new Date(0), { u: undefined }];";
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual([
      null,
      null,
      null,
      0,
      "1970-01-01T00:00:00.000Z",
      {},
    ]);
  });
});

describe("programs looking for the host", () => {
  it("`this.constructor.constructor('return process')()` fails: the program is strict", async () => {
    const code = "return this.constructor.constructor('return process')();";
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      name: "TypeError",
      message: "Cannot read properties of undefined (reading 'constructor')",
      ...locate(code, "constructor"),
    });
  });

  it("the Function constructor reaches only the isolate's own global", async () => {
    const code = [
      "const g = ({}).constructor.constructor('return this')();",
      "return {",
      "  same: g === globalThis,",
      "  process: Function('return typeof process')(),",
      "  require: typeof g.require,",
      "  viaMethod: typeof tools.echo.constructor('return this')().process,",
      "  viaAsync: typeof (async () => {}).constructor('return this')().process,",
      "};",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      same: true,
      process: "undefined",
      require: "undefined",
      viaMethod: "undefined",
      viaAsync: "undefined",
    });
  });

  it("none of the host's globals is there", async () => {
    const names = [
      "require",
      "process",
      "fetch",
      "setTimeout",
      "setInterval",
      "setImmediate",
      "queueMicrotask",
      "structuredClone",
      "Buffer",
      "global",
      "module",
      "exports",
      "__dirname",
      "WebAssembly",
      "ivm",
      "_ivm",
      "performance",
      "TextEncoder",
      "URL",
      "atob",
    ];
    const code = `return { ${names.map((name) => `${name}: typeof ${name}`).join(", ")}, SharedArrayBuffer: typeof SharedArrayBuffer };`;
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      ...Object.fromEntries(names.map((name) => [name, "undefined"])),
      // V8's own, not the host's: one thread, so it shares nothing.
      SharedArrayBuffer: "function",
    });
  });

  it("`await import('fs')` fails clearly", async () => {
    const code = "const fs = await import('fs');\nreturn typeof fs;";
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      message: "Not supported",
      ...locate(code, "await import("),
    });
  });

  it("a data: URL import fails the same way", async () => {
    const code = "const m = await import('data:text/javascript,export default 1');\nreturn m;";
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      message: "Not supported",
    });
  });

  it("a static import is a compile error", async () => {
    expectFailure(await runWith(createToolHost(), "import fs from 'fs';\nreturn 1;"), {
      code: "compile_error",
      line: 1,
    });
  });

  it("`require('fs')` is a ReferenceError", async () => {
    const code = "const fs = require('fs');";
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      name: "ReferenceError",
      message: "require is not defined",
      ...locate(code, "require"),
    });
  });

  it("a caught ToolError leads only to the isolate's own objects", async () => {
    const code = [
      "try {",
      "  await tools.fail({});",
      "} catch (e: any) {",
      "  let escaped: string;",
      "  try { escaped = typeof e.constructor.constructor('return process')(); }",
      "  catch (x: any) { escaped = x.name; }",
      "  return {",
      "    own: Object.getOwnPropertyNames(e).sort(),",
      "    symbols: Object.getOwnPropertySymbols(e).length,",
      "    protoOwn: Object.getOwnPropertyNames(ToolError.prototype).sort(),",
      "    isToolError: e instanceof ToolError && e.constructor === ToolError,",
      "    chain: Object.getPrototypeOf(ToolError.prototype) === Error.prototype",
      "      && e.__proto__.__proto__.__proto__ === Object.prototype,",
      "    escaped,",
      "    globalOfCtor: e.constructor.constructor('return this')() === globalThis,",
      "    fields: [e.name, e.message, e.server, e.tool, e.code],",
      "  };",
      "}",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      // `name` lives on ToolError.prototype; `stack` is V8's own accessor.
      own: ["code", "message", "server", "stack", "tool"],
      symbols: 0,
      protoOwn: ["constructor", "name"],
      isToolError: true,
      chain: true,
      escaped: "ReferenceError",
      globalOfCtor: true,
      fields: ["ToolError", "the tool failed on purpose", "tools", "fail", "deliberate"],
    });
  });

  it("a ToolError thrown on is reported with its server, tool and the program's location", async () => {
    const code =
      "try {\n  await tools.fail({});\n} catch (e: any) {\n  Error.captureStackTrace(e);\n  throw e;\n}";
    const error = expectFailure(await runWith(createToolHost(), code), {
      code: "tool_error",
      name: "ToolError",
      message: "the tool failed on purpose",
      ...locate(code, "captureStackTrace(e)"),
    });
    expect(error).toMatchObject({ server: "tools", tool: "fail" });
  });

  it("Error.prepareStackTrace cannot be assigned, and the error still has its location", async () => {
    const code = "const n = 1;\nError.prepareStackTrace = () => 'hijacked';";
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      name: "TypeError",
      message: "Cannot assign to read only property 'prepareStackTrace'",
      ...locate(code, "prepareStackTrace ="),
    });
  });

  it("Error.prepareStackTrace cannot be redefined either", async () => {
    const code = "Object.defineProperty(Error, 'prepareStackTrace', { value: () => 'x' });";
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      message: "Cannot redefine property: prepareStackTrace",
      line: 1,
    });
  });

  it("Error.stackTraceLimit = 0 only costs the program its own error locations", async () => {
    const code = "Error.stackTraceLimit = 0;\nconst o: any = null;\no.x;";
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      name: "TypeError",
      line: null,
    });
  });

  it("Symbol.species and Promise.prototype.then overrides leave tool calls working", async () => {
    const code = [
      "const g = globalThis as any;",
      "g.thens = 0;",
      "class P<T> extends Promise<T> {}",
      "Object.defineProperty(Promise, Symbol.species, { get: () => P });",
      "class A extends Array {}",
      "Object.defineProperty(Array, Symbol.species, { get: () => A });",
      "const then = Promise.prototype.then;",
      "Promise.prototype.then = function (this: Promise<unknown>, ok: any, ko: any) {",
      "  g.thens++;",
      "  return then.call(this, ok, ko);",
      "} as any;",
      "const echoed = await tools.echo({ x: 1 });",
      "let failed;",
      "try { await tools.fail({}); } catch (e: any) { failed = [e.name, e.code]; }",
      "const all = await Promise.all([tools.echo({ a: 1 }), tools.echo({ a: 2 })]);",
      "return { echoed, failed, all, sawThens: g.thens > 0 };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      echoed: { x: 1 },
      failed: ["ToolError", "deliberate"],
      all: [{ a: 1 }, { a: 2 }],
      sawThens: true,
    });
  });

  it("a poisoned Promise.prototype.constructor leaves tool calls working", async () => {
    const code =
      "Promise.prototype.constructor = function () { throw new Error('species trap'); } as any;\nreturn await tools.echo({ x: 1 });";
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({ x: 1 });
  });

  it.each([
    ["an object", "{ forged: true }"],
    ["a promise of a malformed reply", "Promise.resolve('Rnot json')"],
  ])(
    "a Promise species poisoned to return %s cannot make runProgram throw",
    async (_what, forged) => {
      const code = [
        "function Forger(executor: any) {",
        "  executor(() => {}, () => {});",
        `  return ${forged};`,
        "}",
        "(Promise.prototype as any).constructor = { [Symbol.species]: Forger };",
        "return 1;",
      ].join("\n");
      // Whether the forgery reaches the host depends on how the runtime chains its last promise;
      // either way the run ends with the program's own result or a clear error.
      const run = await runWith(createToolHost(), code);
      if (run.ok) expect(run.result).toBe(1);
      else
        expectFailure(run, {
          code: "result_error",
          message: "The program's reply could not be read",
        });
    },
  );

  it("an endless Promise.prototype.then is never called by the runtime: calls still work", async () => {
    const code =
      "Promise.prototype.then = function () { while (true) {} } as any;\nreturn await tools.echo({ a: 1 });";
    const run = await runWith(createToolHost(), code, { limits: CPU });
    expect(run).toMatchObject({ ok: true, result: { a: 1 } });
  });

  it("calls started while Promise.prototype.constructor is poisoned still go out and settle", async () => {
    const code = [
      "const saved = Promise.prototype.constructor;",
      "(Promise.prototype as any).constructor = 5;",
      "(Object.prototype as any).get = () => 1;",
      "let started: Promise<any>[] = [];",
      "try { started = [1, 2, 3].map((n) => tools.echo({ n })); }",
      "catch (error: any) { return 'calls threw: ' + error.message; }",
      "(Promise.prototype as any).constructor = saved;",
      "const first: number[] = [];",
      "for (const call of started) first.push((await call).n);",
      "const later = await Promise.all([4, 5].map((n) => tools.echo({ n })));",
      "return [...first, ...later.map((r: any) => r.n)];",
    ].join("\n");
    const run = await runWith(createToolHost(), code, { limits: CPU });
    expect(run).toMatchObject({ ok: true, result: [1, 2, 3, 4, 5] });
  });

  it("Object.prototype, Array.prototype, JSON and Reflect pollution leaves tool calls working", async () => {
    const code = [
      "const O: any = Object.prototype;",
      "O.result = { reference: true };",
      "O.reference = true;",
      "O.copy = false;",
      "O.promise = false;",
      "O.arguments = { reference: true };",
      "O.timeout = 1;",
      "for (const key of ['externalCopy', 'release', 'accessors']) {",
      "  Object.defineProperty(O, key, { get() { throw new Error(key); } });",
      "}",
      "for (const index of [0, 1, 2]) {",
      "  Object.defineProperty(Array.prototype, index, {",
      "    get() { throw new Error('index ' + index); }, set() {}, configurable: true,",
      "  });",
      "}",
      "JSON.stringify = () => { throw new Error('stringify hijacked'); };",
      "JSON.parse = () => { throw new Error('parse hijacked'); };",
      "String.prototype.slice = () => 'hijacked';",
      "Reflect.apply = () => { throw new Error('apply hijacked'); };",
      "Function.prototype.apply = () => { throw new Error('fn.apply hijacked'); };",
      "Function.prototype.call = () => { throw new Error('fn.call hijacked'); };",
      "Object.freeze = (o: any) => o;",
      "const echoed = await tools.echo({ x: 1 });",
      "let failed;",
      "try { await tools.fail({}); } catch (e: any) { failed = [e.name, e.message, e.code]; }",
      "console.log('still logging', { a: 1 });",
      "return { echoed, failed };",
    ].join("\n");
    const run = await runWith(createToolHost(), code);
    expect(expectSuccess(run)).toEqual({
      echoed: { x: 1 },
      failed: ["ToolError", "the tool failed on purpose", "deliberate"],
    });
    expect(run.logs.map((entry) => entry.message)).toEqual(['still logging {"a":1}']);
  });

  it("a thenable Object.prototype only confuses the program itself", async () => {
    const code =
      "(Object.prototype as any).then = function (resolve: any) { resolve('hijacked'); };\nconst r = await tools.echo({ x: 1 });\nreturn [r];";
    // The tool result and then the program's own array are thenables now; the run stays whole.
    expect(expectSuccess(await runWith(createToolHost(), code))).toBe("hijacked");
  });

  it("the globals are exactly ECMAScript's plus input, console, ToolError and the namespaces", async () => {
    const code = "return Object.getOwnPropertyNames(globalThis).sort();";
    const standard = [
      "AggregateError",
      "Array",
      "ArrayBuffer",
      "AsyncDisposableStack",
      "Atomics",
      "BigInt",
      "BigInt64Array",
      "BigUint64Array",
      "Boolean",
      "DataView",
      "Date",
      "DisposableStack",
      "Error",
      "EvalError",
      "FinalizationRegistry",
      "Float16Array",
      "Float32Array",
      "Float64Array",
      "Function",
      "Infinity",
      "Int16Array",
      "Int32Array",
      "Int8Array",
      "Intl",
      "Iterator",
      "JSON",
      "Map",
      "Math",
      "NaN",
      "Number",
      "Object",
      "Promise",
      "Proxy",
      "RangeError",
      "ReferenceError",
      "Reflect",
      "RegExp",
      "Set",
      "SharedArrayBuffer",
      "String",
      "SuppressedError",
      "Symbol",
      "SyntaxError",
      "TypeError",
      "URIError",
      "Uint16Array",
      "Uint32Array",
      "Uint8Array",
      "Uint8ClampedArray",
      "WeakMap",
      "WeakRef",
      "WeakSet",
      "decodeURI",
      "decodeURIComponent",
      "encodeURI",
      "encodeURIComponent",
      "escape",
      "eval",
      "globalThis",
      "isFinite",
      "isNaN",
      "parseFloat",
      "parseInt",
      "undefined",
      "unescape",
    ];
    const turtle = ["ToolError", "console", "input"];
    const bare = await runProgram(code);
    expect(expectSuccess(bare)).toEqual([...standard, ...turtle].sort());
    const withTools = await runWith(createToolHost(), code);
    expect(expectSuccess(withTools)).toEqual([...standard, ...turtle, "tools"].sort());
    const symbols = await runProgram("return Object.getOwnPropertySymbols(globalThis).length;");
    expect(expectSuccess(symbols)).toBe(0);
  });

  it("the closure's parameters are out of the program's reach", async () => {
    const code = [
      "return {",
      "  names: [typeof $0, typeof $1, typeof $2, typeof $3, typeof guestRuntime],",
      "  viaEval: [eval('typeof $0'), eval('typeof $3'), (0, eval)('typeof $0')],",
      "  viaFunction: Function('return typeof $0')(),",
      "  args: [arguments.length, typeof arguments[0]],",
      "  self: typeof this,",
      "};",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      names: ["undefined", "undefined", "undefined", "undefined", "undefined"],
      viaEval: ["undefined", "undefined", "undefined"],
      viaFunction: "undefined",
      args: [0, "undefined"],
      self: "undefined",
    });
  });

  it("closing the wrapper early runs code only after the runtime has armed itself", async () => {
    // `}, sideEffect(), async function () {` is valid inside the wrapper esbuild sees. The side
    // effect used to run before the runtime captured Reflect.apply, and a swapped one was handed
    // the isolated-vm Reference to the host.
    const code = [
      "return 'first';",
      "}, (() => {",
      "  const original = Reflect.apply;",
      "  (Reflect as any).apply = (fn: any, self: any, args: any[]) => {",
      "    if (self !== null && typeof self === 'object' && !(globalThis as any).captured) {",
      "      (globalThis as any).captured = self;",
      "    }",
      "    return original(fn, self, args);",
      "  };",
      "})(), async function () {",
      "  await tools.echo({});",
      "  const captured = (globalThis as any).captured;",
      "  return { captured: typeof captured, keys: captured ? Object.keys(Object.getPrototypeOf(captured)) : [] };",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({
      captured: "undefined",
      keys: [],
    });
  });

  it("a ToolError the program fakes is reported as such, with its fields cut short", async () => {
    const code =
      "throw new ToolError('made up', 'x'.repeat(1_000_000), { not: 'a string' } as any, 'c');";
    const error = expectFailure(await runWith(createToolHost(), code), {
      code: "tool_error",
      name: "ToolError",
      message: "made up",
      ...locate(code, "new ToolError"),
    });
    expect(error.server).toBe(`${"x".repeat(200)}…`);
    expect(error.tool).toBe("[object Object]");
  });

  it("a plain object named ToolError is taken at its word (the program can only lie about itself)", async () => {
    expectFailure(
      await runWith(createToolHost(), "throw { name: 'ToolError', message: 'fake' };"),
      {
        code: "tool_error",
        message: "fake",
      },
    );
  });
});

describe("tool calls a program abuses", () => {
  it.each([
    ["a number", "tools.echo(5 as any)", "tools.echo() takes one object argument, got number"],
    ["a string", "tools.echo('x' as any)", "takes one object argument, got string"],
    ["an array", "tools.echo([1] as any)", "takes one object argument, got an array"],
    ["null", "tools.echo(null as any)", "takes one object argument, got null"],
    [
      "a BigInt",
      "tools.echo({ n: 1n } as any)",
      "its argument is not JSON: Do not know how to serialize a BigInt",
    ],
    ["a cycle", "tools.echo(cyclic)", "its argument is not JSON: Converting circular structure"],
  ])("calling a tool with %s is a TypeError at the call", async (_what, call, message) => {
    const toolHost = createToolHost();
    const code = `const cyclic: any = {};\ncyclic.self = cyclic;\n  await ${call};`;
    expectFailure(await runWith(toolHost, code), {
      code: "runtime_error",
      name: "TypeError",
      message,
      ...locate(code, "echo("),
    });
    expect(toolHost.calls).toHaveLength(0);
  });

  it("an argument's toJSON decides what the tool gets", async () => {
    const code = "return await tools.echo({ toJSON: () => ({ swapped: true }) } as any);";
    expect(expectSuccess(await runWith(createToolHost(), code))).toEqual({ swapped: true });
  });

  it("a method the run does not have is not a function", async () => {
    const toolHost = createToolHost();
    const code = "return await (tools as any).secret({});";
    expectFailure(await runWith(toolHost, code), {
      code: "runtime_error",
      name: "TypeError",
      message: "tools.secret is not a function",
      line: 1,
    });
    expect(toolHost.calls).toHaveLength(0);
  });

  it.each([
    [
      "replacing a method",
      "(tools as any).echo = () => 'fake';",
      "Cannot assign to read only property 'echo'",
    ],
    [
      "redefining a namespace",
      "Object.defineProperty(globalThis, 'tools', { value: {} });",
      "Cannot redefine property: tools",
    ],
    [
      "replacing console",
      "(globalThis as any).console = {};",
      "Cannot assign to read only property 'console'",
    ],
    [
      "replacing console.log",
      "(console as any).log = () => {};",
      "Cannot assign to read only property 'log'",
    ],
    [
      "replacing ToolError",
      "(globalThis as any).ToolError = Error;",
      "Cannot assign to read only property 'ToolError'",
    ],
  ])("%s is a TypeError", async (_what, code, message) => {
    expectFailure(await runWith(createToolHost(), code), {
      code: "runtime_error",
      name: "TypeError",
      message,
      line: 1,
    });
  });

  it("namespaces are frozen objects without a prototype; input is the program's to change", async () => {
    const code = [
      "(globalThis as any).input = 5;",
      "return {",
      "  input,",
      "  proto: Object.getPrototypeOf(tools),",
      "  frozen: Object.isFrozen(tools),",
      "  keys: Object.keys(tools),",
      "  ctor: typeof (tools as any).constructor,",
      "};",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), code, { input: { a: 1 } }))).toEqual({
      input: 5,
      proto: null,
      frozen: true,
      keys: ["echo", "slow", "stubborn", "fail", "bigint"],
      ctor: "undefined",
    });
  });

  it("a tool result that is not JSON becomes a ToolError, without the host's stack", async () => {
    const code =
      "try {\n  await tools.bigint({});\n} catch (e: any) {\n  return [e.name, e.message, e.stack];\n}";
    const [name, message, stack] = expectSuccess(await runWith(createToolHost(), code)) as string[];
    expect(name).toBe("ToolError");
    expect(message).toBe(
      "tools.bigint() returned a value that is not JSON: Do not know how to serialize a BigInt",
    );
    expect(stack).not.toMatch(/packages\/sandbox|node:|\.ts:\d/);
  });

  it("calls left in flight when the program returns are aborted, and settle harmlessly", async () => {
    const toolHost = createToolHost();
    const run = await runWith(
      toolHost,
      "tools.slow({ ms: 10_000 });\ntools.stubborn({ ms: 50 });\nreturn 1;",
    );
    expect(expectSuccess(run)).toBe(1);
    expect(toolHost.slowCalls.map((slow) => slow.call.method)).toEqual(["slow", "stubborn"]);
    for (const slow of toolHost.slowCalls) expect(slow.call.signal.aborted).toBe(true);
    // `slow` stops when its signal fires; `stubborn` ignores it and answers a disposed isolate.
    expect(await Promise.all(toolHost.slowCalls.map((slow) => slow.settled))).toEqual([
      "aborted",
      "done",
    ]);
    expect(
      expectSuccess(await runWith(createToolHost(), "return await tools.echo({ after: true });")),
    ).toEqual({ after: true });
  });

  it("100,000 concurrent calls exceed maxConcurrentCalls with the default limits", async () => {
    const toolHost = createToolHost();
    const code =
      "const pending = [];\nfor (let i = 0; i < 100_000; i++) pending.push(tools.echo({ i }));\nreturn (await Promise.all(pending)).length;";
    const error = expectFailure(await runWith(toolHost, code), {
      code: "limit_exceeded",
      name: "LimitError",
      message: `tools.echo(): ${DEFAULT_LIMITS.maxConcurrentCalls} tool calls are already in flight, the limit (maxConcurrentCalls); await some before starting more`,
      ...locate(code, "echo({ i })"),
    });
    expect(error.stack).toContain("program.ts:2:");
    expect(toolHost.calls.length).toBeLessThanOrEqual(DEFAULT_LIMITS.maxConcurrentCalls);
  });

  it("100,000 concurrent calls succeed when maxConcurrentCalls allows them", async () => {
    const toolHost = createToolHost();
    const code =
      "const pending = [];\nfor (let i = 0; i < 100_000; i++) pending.push(tools.echo({ i }));\nconst all = await Promise.all(pending);\nreturn [all.length, all[99_999]];";
    const run = await runWith(toolHost, code, { limits: { maxConcurrentCalls: 100_000 } });
    expect(expectSuccess(run)).toEqual([100_000, { i: 99_999 }]);
    expect(run.stats.toolCalls).toBe(100_000);
  });

  it("Promise.all over 10,000 calls succeeds with the default limits", async () => {
    const code =
      "const all = await Promise.all(Array.from({ length: 10_000 }, (_, i) => tools.echo({ i })));\nreturn all.length;";
    expect(expectSuccess(await runWith(createToolHost(), code))).toBe(10_000);
  });

  it("maxToolCalls is enforced, and the program can catch it", async () => {
    const toolHost = createToolHost();
    const code = [
      "const out = [];",
      "for (let i = 0; i < 6; i++) {",
      "  try { out.push(await tools.echo({ i })); }",
      "  catch (e: any) { out.push([e.name, e.message, e.limit]); }",
      "}",
      "return out;",
    ].join("\n");
    const run = await runWith(toolHost, code, { limits: { maxToolCalls: 5 } });
    expect(expectSuccess(run)).toEqual([
      { i: 0 },
      { i: 1 },
      { i: 2 },
      { i: 3 },
      { i: 4 },
      [
        "LimitError",
        "tools.echo(): the program already made 5 tool calls, its limit (maxToolCalls)",
        "maxToolCalls",
      ],
    ]);
    expect(toolHost.calls).toHaveLength(5);
  });

  it("maxToolCalls uncaught is a limit_exceeded at the sixth call", async () => {
    const code = "for (let i = 0; i < 6; i++) {\n  await tools.echo({ i });\n}";
    expectFailure(await runWith(createToolHost(), code, { limits: { maxToolCalls: 5 } }), {
      code: "limit_exceeded",
      message: "(maxToolCalls)",
      ...locate(code, "echo({ i })"),
    });
  });

  it("the host cancelling a run mid tool call ends it as cancelled and aborts the call", async () => {
    const toolHost = createToolHost();
    const controller = new AbortController();
    const running = runWith(toolHost, "await tools.slow({ ms: 60_000 });\nreturn 'finished';", {
      signal: controller.signal,
      limits: { timeoutMs: 120_000 },
    });
    const slow = await toolHost.nextSlowCall();
    controller.abort();
    expectFailure(await running, {
      code: "cancelled",
      name: "CancelledError",
      message: "The run was cancelled",
    });
    expect(slow.call.signal.aborted).toBe(true);
    expect(await slow.settled).toBe("aborted");
  });

  it("the deadline passing mid tool call aborts the call", async () => {
    const toolHost = createToolHost();
    const run = await runWith(toolHost, "await tools.slow({ ms: 60_000 });", { limits: WALL });
    expectFailure(run, { code: "timeout" });
    const [slow] = toolHost.slowCalls;
    expect(slow?.call.signal.aborted).toBe(true);
    expect(await slow?.settled).toBe("aborted");
  });

  it("a run cancelled before it starts never runs", async () => {
    const toolHost = createToolHost();
    const controller = new AbortController();
    controller.abort();
    const run = await runWith(toolHost, "await tools.echo({});", { signal: controller.signal });
    expectFailure(run, { code: "cancelled" });
    expect(toolHost.calls).toHaveLength(0);
  });
});

describe("console output", () => {
  it("every line logged before the result is in the result, even right after a tool call", async () => {
    // The reply can overtake the last lines on their way into the host; before the run waited
    // for them, this line was missing from two runs in three.
    for (let i = 0; i < 30; i++) {
      const code = "const r = await tools.echo({ n: 1 });\nconsole.log('got', r.n);\nreturn r.n;";
      const run = await runWith(createToolHost(), code);
      expect(run.logs.map((entry) => entry.message)).toEqual(["got 1"]);
    }
  });

  it("logging hostile values prints what it can and never throws", async () => {
    const code = [
      "const cyclic: any = { name: 'c' };",
      "cyclic.self = cyclic;",
      "console.log(cyclic);",
      "console.log(new Proxy({}, { ownKeys() { throw new Error('trap'); } }));",
      "console.log({ toJSON() { throw new Error('no json'); } });",
      "console.log(10n, Symbol('s'), () => 1, new Map([['k', 1]]), undefined, null);",
      "console.log({ get x() { throw new Error('getter'); } });",
      "return 'logged';",
    ].join("\n");
    const run = await runWith(createToolHost(), code);
    expect(expectSuccess(run)).toBe("logged");
    expect(run.logs.map((entry) => entry.message)).toEqual([
      '{"name":"c","self":"[Circular]"}',
      "[unprintable value: trap]",
      "[unprintable value: no json]",
      '10n Symbol(s) [Function anonymous] {"[Map]":[["k",1]]} undefined null',
      "[unprintable value: getter]",
    ]);
  });
});

describe("runs side by side", () => {
  it("what one run does to its globals, the next run never sees", async () => {
    const polluter = [
      "(Object.prototype as any).polluted = 1;",
      "(globalThis as any).leak = 2;",
      "(Array.prototype as any).push = null;",
      "(JSON as any).parse = null;",
      "return 'polluted';",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), polluter))).toBe("polluted");
    const reader = [
      "const list: number[] = [];",
      "list.push(1);",
      "return {",
      "  polluted: typeof ({} as any).polluted,",
      "  leak: typeof (globalThis as any).leak,",
      "  push: typeof Array.prototype.push,",
      "  parse: typeof JSON.parse,",
      "  list,",
      "};",
    ].join("\n");
    expect(expectSuccess(await runWith(createToolHost(), reader))).toEqual({
      polluted: "undefined",
      leak: "undefined",
      push: "function",
      parse: "function",
      list: [1],
    });
  });

  it("a spinning run does not hold up a normal run beside it", async () => {
    const toolHost = createToolHost();
    const controller = new AbortController();
    const spinning = runWith(toolHost, "await tools.slow({ ms: 1 });\nwhile (true) {}", {
      signal: controller.signal,
      limits: { timeoutMs: 60_000, cpuMs: 60_000 },
    });
    await toolHost.nextSlowCall();
    try {
      await expectHostHealthy();
    } finally {
      controller.abort();
    }
    expectFailure(await spinning, { code: "cancelled" });
  });
});
