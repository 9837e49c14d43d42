// A server a run could not reach keeps its namespace: each call of it rejects with a ToolError
// coded server_unavailable, inside the isolate, and the program goes on.
import { describe, expect, it } from "vitest";
import { runProgram, type ToolCall } from "../src/index.ts";

const down = { broken: { server: "broken-server", message: 'MCP server "broken-server" is down' } };

async function run(code: string, replay?: string) {
  const calls: ToolCall[] = [];
  const outcome = await runProgram(code, {
    namespaces: { good: ["echo"] },
    unavailable: down,
    invoke: async (call) => {
      calls.push(call);
      return call.args;
    },
    durable: replay === undefined ? {} : { replay },
  });
  return { outcome, calls };
}

describe("an unavailable server's namespace", () => {
  it("rejects every method's calls with a catchable ToolError; the others' calls go on", async () => {
    const { outcome, calls } = await run(
      [
        "const caught = [];",
        "for (const method of ['list_issues', 'toString', '__proto__', 'x y']) {",
        "  try {",
        "    await broken[method]({ a: 1 });",
        "  } catch (error) {",
        "    caught.push([error instanceof ToolError, error.code, error.server, error.tool, error.message]);",
        "  }",
        "}",
        "return { caught, echoed: await good.echo({ b: 2 }) };",
      ].join("\n"),
    );
    expect(outcome).toMatchObject({ ok: true });
    const message = 'MCP server "broken-server" is down';
    expect(outcome.ok && outcome.result).toEqual({
      caught: [
        [true, "server_unavailable", "broken-server", "list_issues", message],
        [true, "server_unavailable", "broken-server", "toString", message],
        [true, "server_unavailable", "broken-server", "__proto__", message],
        [true, "server_unavailable", "broken-server", "x y", message],
      ],
      echoed: { b: 2 },
    });
    // None of its calls went to the host.
    expect(calls.map((call) => call.namespace)).toEqual(["good"]);
  });

  it("can be awaited and inspected without hanging: no then, no symbols", async () => {
    const { outcome } = await run(
      "return [(await broken) === broken, typeof broken.then, typeof broken[Symbol.iterator], typeof globalThis.broken.anything];",
    );
    expect(outcome.ok && outcome.result).toEqual([true, "undefined", "undefined", "function"]);
  });

  it("still answers a call that has a checkpoint; the same call once more fails", async () => {
    const replay = JSON.stringify({ [await stepKeyOf("broken", "get", { id: 1 })]: { found: 1 } });
    const { outcome } = await run(
      "const a = await broken.get({ id: 1 });\nlet b;\ntry { b = await broken.get({ id: 1 }); } catch (error) { b = error.code; }\nreturn [a, b];",
      replay,
    );
    expect(outcome.ok && outcome.result).toEqual([{ found: 1 }, "server_unavailable"]);
    expect(outcome.replayed).toHaveLength(1);
  });

  it("is refused when its name is not a usable global", async () => {
    const outcome = await runProgram("return 1;", {
      unavailable: { JSON: { server: "JSON", message: "down" } },
    });
    expect(outcome).toMatchObject({ ok: false, error: { code: "invalid_options" } });
  });
});

/** The step key a durable run gives the first call of `namespace.method(args)`. */
async function stepKeyOf(namespace: string, method: string, args: unknown): Promise<string> {
  let key = "";
  await runProgram(`await ${namespace}.${method}(${JSON.stringify(args)});`, {
    namespaces: { [namespace]: [method] },
    invoke: async (call) => {
      key = call.key ?? "";
      return null;
    },
    durable: {},
  });
  return key;
}

// JSON.stringify asks any object for `toJSON`: the namespace must not answer it with a method.
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
