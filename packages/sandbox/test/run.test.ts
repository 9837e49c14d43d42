import { describe, expect, it } from "vitest";
import { runProgram } from "../src/index.ts";

const namespaces = { math: ["add"] };
const invoke = async (call: { args: unknown }) => {
  const { a, b } = call.args as { a: number; b: number };
  return a + b;
};

describe("runProgram", () => {
  it("takes namespaces named like Node's globals, which the sandbox does not have", async () => {
    const names = [
      "fetch",
      "process",
      "Buffer",
      "setTimeout",
      "crypto",
      "URL",
      "navigator",
      "performance",
      "structuredClone",
      "global",
      "atob",
      "TextEncoder",
      "queueMicrotask",
    ];
    const run = await runProgram(
      `return [${names.map((name) => `await ${name}.add({ a: 1, b: 1 })`).join(", ")}];`,
      { namespaces: Object.fromEntries(names.map((name) => [name, ["add"]])), invoke },
    );
    expect(run).toMatchObject({ ok: true, result: names.map(() => 2) });
    // The sandbox's own globals, and what every object inherits, stay refused.
    for (const taken of ["JSON", "Math", "toString", "console", "input"]) {
      const refused = await runProgram("return 1;", { namespaces: { [taken]: ["add"] }, invoke });
      expect(refused).toMatchObject({ ok: false, error: { code: "invalid_options" } });
    }
  });

  it("runs TypeScript with input, a tool call and console output", async () => {
    const run = await runProgram(
      "const x: number = await math.add({ a: input.a, b: 2 });\nconsole.log('x is', x);\nreturn { x };",
      { namespaces, invoke, input: { a: 1 } },
    );
    expect(run).toMatchObject({ ok: true, result: { x: 3 }, stats: { toolCalls: 1 } });
    expect(run.logs.map((entry) => entry.message)).toEqual(["x is 3"]);
  });

  it("stops the run at its deadline when that comes before timeoutMs", {
    timeout: 20_000,
  }, async () => {
    // A job's deadline counts from its start: time spent before the run (its servers starting)
    // leaves the run less than timeoutMs.
    const run = await runProgram("await wait.forever(); return 'done';", {
      namespaces: { wait: ["forever"] },
      invoke: () => new Promise(() => {}),
      limits: { timeoutMs: 60_000 },
      deadline: Date.now() + 200,
    });
    expect(run).toMatchObject({ ok: false, error: { code: "timeout" } });
  });

  it("reports a runtime error at its line and column in the TypeScript", async () => {
    const run = await runProgram("type T = { a: number };\nconst t: T | null = null;\n\nt!.a;");
    expect(run.ok).toBe(false);
    if (run.ok) return;
    expect(run.error).toMatchObject({
      code: "runtime_error",
      name: "TypeError",
      line: 4,
      column: 4,
    });
    expect(run.error.stack).toContain("program.ts:4:4");
  });

  it("settles each call of a batch with its own reply: values, tool errors and big results", async () => {
    // 12 × 1 MB of replies settle in one turn: more than one message's worth back to the guest.
    const run = await runProgram(
      [
        "const sizes = Array.from({ length: 24 }, (_, i) => i);",
        "const settled = await Promise.allSettled(sizes.map((i) => big.make({ i })));",
        "return settled.map((s) => s.status === 'fulfilled' ? s.value.length : s.reason.name + ':' + s.reason.message);",
      ].join("\n"),
      {
        namespaces: { big: ["make"] },
        invoke: async (call) => {
          const { i } = call.args as { i: number };
          if (i % 2 === 1) throw new Error(`odd ${i}`);
          return "x".repeat(1024 * 1024 + i);
        },
      },
    );
    expect(run.ok).toBe(true);
    if (!run.ok) return;
    expect(run.result).toEqual(
      Array.from({ length: 24 }, (_, i) => (i % 2 === 1 ? `ToolError:odd ${i}` : 1024 * 1024 + i)),
    );
  });

  it("keeps the order a program observes when calls settle at different times", async () => {
    const run = await runProgram(
      [
        "const order: number[] = [];",
        "await Promise.all([30, 0, 15, 5].map(async (ms) => { await clock.wait({ ms }); order.push(ms); }));",
        "const first = await Promise.race([clock.wait({ ms: 40 }).then(() => 'slow'), clock.wait({ ms: 1 }).then(() => 'fast')]);",
        "return { order, first };",
      ].join("\n"),
      {
        namespaces: { clock: ["wait"] },
        invoke: (call) =>
          new Promise((resolve) => setTimeout(resolve, (call.args as { ms: number }).ms)),
      },
    );
    expect(run).toMatchObject({ ok: true, result: { order: [0, 5, 15, 30], first: "fast" } });
  });

  it("answers a call whose tool hands back something that is not JSON, or an unreadable error", async () => {
    const run = await runProgram(
      [
        "const results = await Promise.allSettled([odd.fn({}), odd.symbol({}), odd.bare({}), odd.fine({})]);",
        "return results.map((r) => r.status === 'fulfilled' ? r.value : r.reason.message);",
      ].join("\n"),
      {
        namespaces: { odd: ["fn", "symbol", "bare", "fine"] },
        invoke: async (call) => {
          if (call.method === "fn") return () => 1;
          if (call.method === "symbol") return Symbol("s");
          if (call.method === "bare") throw Object.create(null);
          return "ok";
        },
      },
    );
    expect(run.ok).toBe(true);
    if (!run.ok) return;
    expect(run.result).toEqual([
      expect.stringContaining("odd.fn() returned a value that is not JSON"),
      expect.stringContaining("odd.symbol() returned a value that is not JSON"),
      "odd.bare() failed with an unreadable error",
      "ok",
    ]);
  });

  it("runs `using` and `await using` declarations, whose lowering brings helpers before the program", async () => {
    const code = [
      "const disposed: string[] = [];",
      "{",
      "  using a = { [Symbol.dispose]() { disposed.push('a'); } };",
      "  await using b = { async [Symbol.asyncDispose]() { disposed.push('b'); } };",
      "}",
      "const x = await math.add({ a: 1, b: 2 });",
      "if (x === 3) throw new Error('disposed ' + disposed.join(','));",
    ].join("\n");
    const run = await runProgram(code, { namespaces, invoke });
    expect(run.ok).toBe(false);
    if (run.ok) return;
    // The error's line is the program's own, helpers or not.
    expect(run.error).toMatchObject({ code: "runtime_error", message: "disposed b,a", line: 7 });
  });

  it("reports syntax V8 refuses in strict code (a `with` statement) as a compile error at its line", async () => {
    const run = await runProgram("const o = { a: 1 };\nwith (o) {\n  return a;\n}");
    expect(run.ok).toBe(false);
    if (run.ok) return;
    expect(run.error).toMatchObject({
      code: "compile_error",
      message: "Strict mode code may not include a with statement",
      line: 2,
    });
  });
});

describe("runProgram aborted while the program compiles", () => {
  it("is cancelled, not run to its end", { timeout: 20_000 }, async () => {
    const controller = new AbortController();
    const running = runProgram(
      "const until = Date.now() + 1500; while (Date.now() < until) {} return 'ran';",
      { signal: controller.signal, limits: { timeoutMs: 10_000 } },
    );
    // runProgram has checked the signal and awaits the compiler: the abort lands in between.
    controller.abort();
    const run = await running;
    expect(run).toMatchObject({ ok: false, error: { code: "cancelled" } });
  });
});
