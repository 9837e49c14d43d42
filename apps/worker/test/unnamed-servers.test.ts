// A job connects only to the servers its program names (serversUsedBy), but JavaScript can reach
// a global without writing its name: eval, the Function constructor, globalThis through another
// name. Such a program must not meet a bare ReferenceError (or undefined) for a server its project
// registered: it gets the server when the reach is plain enough to see, and otherwise a ToolError
// that says why the server is not there and how to name it.
import { test } from "@turtle/test-support";
import { expect } from "vitest";

test("a server reached without its name: served when the program's reach can be seen, otherwise a clear ToolError", async ({
  platform,
  worker,
}) => {
  expect(worker).toBeDefined();
  // globalThis.globalThis is globalThis: a computed property of it may be any server.
  const aliased = await platform.submit({
    code: "return await globalThis.globalThis[input.name].echo({ a: 1 });",
    input: { name: "control" },
  });
  expect(await platform.waitFor(aliased.id, ["succeeded", "failed"])).toMatchObject({
    status: "succeeded",
    result: { a: 1 },
  });

  // eval's (and Function's) text is not read: the server is not connected, and its calls say so.
  const evaluated = await platform.submit({
    code: [
      "const ns = (0, eval)(input.name);",
      "try {",
      "  await ns.echo({ a: 1 });",
      "} catch (error) {",
      "  return { isToolError: error instanceof ToolError, code: error.code, server: error.server, message: error.message };",
      "}",
    ].join("\n"),
    input: { name: "control" },
  });
  const done = await platform.waitFor(evaluated.id, ["succeeded", "failed"]);
  expect(done.error).toBeNull();
  expect(done.result).toMatchObject({
    isToolError: true,
    code: "server_unavailable",
    server: "control",
  });
  expect((done.result as { message: string }).message).toMatch(
    /MCP server "control" was not connected for this job: its program does not name it/,
  );
});
