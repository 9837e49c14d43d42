// An unavailable server's namespace stands where a working one would: logging it, returning it
// or writing it as JSON does what it does with a working namespace, and no call is made behind
// the program's back (JSON.stringify asks any object for `toJSON`).
import { describe, expect, it } from "vitest";
import { runProgram, type ToolCall } from "../src/index.ts";

const down = { broken: { server: "broken-server", message: 'MCP server "broken-server" is down' } };

async function run(code: string) {
  const calls: ToolCall[] = [];
  const outcome = await runProgram(code, {
    namespaces: { good: ["echo"] },
    unavailable: down,
    invoke: async (call) => {
      calls.push(call);
      return call.args;
    },
  });
  return { outcome, calls };
}

describe("an unavailable server's namespace, inspected", () => {
  it("can be logged, returned and written as JSON as a working namespace can", async () => {
    const { outcome, calls } = await run(
      [
        "console.log(broken);",
        "console.log({ tools: broken });",
        "return { json: JSON.stringify(broken), same: JSON.stringify(broken) === JSON.stringify(good), value: broken, toJSON: typeof broken.toJSON };",
      ].join("\n"),
    );
    expect(outcome.ok ? null : outcome.error).toBeNull();
    expect(outcome.ok && outcome.result).toEqual({
      json: "{}",
      same: true,
      value: {},
      toJSON: "undefined",
    });
    expect(outcome.logs.map((entry) => entry.message)).toEqual(["{}", '{"tools":{}}']);
    expect(calls).toEqual([]);
  });
});
