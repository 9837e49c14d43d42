import { describe, expect, it } from "vitest";
import { runProgram } from "../src/index.ts";

const namespaces = { math: ["add"] };
const invoke = async (call: { args: unknown }) => {
  const { a, b } = call.args as { a: number; b: number };
  return a + b;
};

describe("runProgram", () => {
  it("runs TypeScript with input, a tool call and console output", async () => {
    const run = await runProgram(
      "const x: number = await math.add({ a: input.a, b: 2 });\nconsole.log('x is', x);\nreturn { x };",
      { namespaces, invoke, input: { a: 1 } },
    );
    expect(run).toMatchObject({ ok: true, result: { x: 3 }, stats: { toolCalls: 1 } });
    expect(run.logs.map((entry) => entry.message)).toEqual(["x is 3"]);
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
});
