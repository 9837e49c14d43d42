// esbuild's time grows steeply with nesting, and its transform cannot be cancelled: a short
// hostile program (nested arrow functions) would hold esbuild's process, and a CPU, for minutes.
// A compile past its time is given up and esbuild's process stopped; the programs compiling
// beside it compile again in the next process.
import { describe, expect, it } from "vitest";
import { compileProgram } from "../src/compile.ts";

/** 4,000 arrow functions nested in one another: about 16 kB that esbuild takes minutes over. */
const NESTED = `const f = ${"a => ".repeat(4000)}1;\nreturn f;`;

describe("a program esbuild is slow to compile", () => {
  it("fails as a compile error naming the limit, and the programs beside it still compile", async () => {
    const slow = compileProgram(NESTED, "slow.ts", { timeoutMs: 300 });
    // Started together with the slow one, in the same esbuild process, and still compiling when
    // that process is stopped (700 nested functions take esbuild about a second).
    const deep = `${"function f() { return ".repeat(700)}1${"; }".repeat(700)}\nreturn 1;`;
    const beside = compileProgram(deep, "beside.ts", { timeoutMs: 60_000 });
    const [slowOutcome, besideOutcome] = await Promise.all([slow, beside]);
    expect(slowOutcome.ok).toBe(false);
    if (slowOutcome.ok) return;
    expect(slowOutcome.error.message).toMatch(/longer than 300 ms to compile.*nests too deeply/);
    expect(besideOutcome.ok).toBe(true);
    // And after it: esbuild's next process compiles.
    const after = await compileProgram("return [1, 2].map((x) => x * 2);", "after.ts");
    expect(after.ok).toBe(true);
  }, 60_000);

  it("lets another program outlive the stops slow ones make of the compiler under it", async () => {
    // Two slow programs, each stopping esbuild's process as its time runs out (the second after
    // compiling again in the process the first one's stop left), while a program that takes
    // about a second compiles beside them: it outlives both stops.
    const slow = [
      compileProgram(`${NESTED}\n// one`, "slow-1.ts", { timeoutMs: 200 }),
      compileProgram(`${NESTED}\n// two`, "slow-2.ts", { timeoutMs: 500 }),
    ];
    const deep = `${"function g() { return ".repeat(700)}2${"; }".repeat(700)}\nreturn 2;`;
    const beside = await compileProgram(deep, "beside-2.ts", { timeoutMs: 60_000 });
    expect(beside.ok ? null : beside.error).toBeNull();
    for (const outcome of await Promise.all(slow)) expect(outcome.ok).toBe(false);
  }, 60_000);
});
