// Tool policies and durable approvals, with a real worker process and a real MCP server whose
// tools say what they do (readOnlyHint, destructiveHint).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CONTROL_SERVER, eventually, it, type TestApi, type TestFleet } from "@turtle/test-support";
import { describe, expect } from "vitest";

let fleet: TestFleet;
let api: TestApi;

it.override("fleetOptions", {
  servers: (dir) => [
    {
      name: "control",
      command: process.execPath,
      args: [CONTROL_SERVER],
      env: { ANNOTATED_TOOLS: "1", COUNT_FILE: join(dir, "calls.jsonl") },
    },
  ],
});

it.beforeAll(async ({ fleet: started }) => {
  fleet = started;
  ({ api } = fleet);
});

/** How many times the server executed each tool. */
function executions(): Record<string, number> {
  let text = "";
  try {
    text = readFileSync(join(fleet.dir, "calls.jsonl"), "utf8");
  } catch {
    return {};
  }
  const counts: Record<string, number> = {};
  for (const line of text.split("\n").filter(Boolean)) {
    const { tool } = JSON.parse(line) as { tool: string };
    counts[tool] = (counts[tool] ?? 0) + 1;
  }
  return counts;
}

/** The arguments of each execution of `tool` the server recorded. */
function calls(tool: string): Array<Record<string, unknown>> {
  return readFileSync(join(fleet.dir, "calls.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { tool: string; args: Record<string, unknown> })
    .filter((call) => call.tool === tool)
    .map((call) => call.args);
}

async function submit(code: string): Promise<string> {
  const response = await api.call({ method: "POST", url: "/v1/jobs", payload: { code } });
  expect(response.statusCode).toBe(202);
  return response.json().id;
}

const status = (id: string, wanted: string) =>
  eventually(`job ${id} to be ${wanted}`, async () => {
    const job = (await api.call({ method: "GET", url: `/v1/jobs/${id}` })).json();
    return job.status === wanted ? job : undefined;
  });

const decide = (id: string, stepKey: string, body: Record<string, unknown>) =>
  api.call({
    method: "POST",
    url: `/v1/jobs/${id}/approvals/${encodeURIComponent(stepKey)}`,
    payload: body,
  });

describe("tool policies", () => {
  it("default from annotations: read-only runs, destructive waits", async () => {
    const response = await api.call({ method: "GET", url: "/v1/servers/control/policies" });
    expect(response.statusCode).toBe(200);
    const { tools, default: wide } = response.json();
    expect(wide).toBeNull();
    const byTool = Object.fromEntries(
      tools.map((tool: { tool: string; policy: string; source: string }) => [tool.tool, tool]),
    );
    expect(byTool.read_record).toEqual({
      tool: "read_record",
      policy: "allow",
      source: "annotations",
    });
    expect(byTool.delete_record).toEqual({
      tool: "delete_record",
      policy: "approve",
      source: "annotations",
    });
    expect(byTool.echo.policy).toBe("allow");
  });

  it("pauses a job at a call that needs approval, holding no worker, and goes on once approved", async () => {
    const before = executions();
    const id = await submit(
      "const read = await control.read_record({ id: 'a' });\nconst gone = await control.delete_record({ id: 'a' });\nreturn { read, gone };",
    );
    const waiting = await status(id, "waiting");
    expect(waiting.finishedAt).toBeNull();
    const listed = (await api.call({ method: "GET", url: `/v1/jobs/${id}/approvals` })).json();
    expect(listed.approvals).toEqual([
      expect.objectContaining({
        server: "control",
        tool: "delete_record",
        args: { id: "a" },
        status: "pending",
        reason: null,
        decidedAt: null,
      }),
    ]);
    // Nothing destructive ran; the worker runs other jobs meanwhile.
    expect((executions().delete_record ?? 0) - (before.delete_record ?? 0)).toBe(0);
    const other = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: { code: "return (await control.echo({ n: 1 })).n" },
    });
    expect(other.json()).toMatchObject({ status: "succeeded", result: 1 });

    const approved = await decide(id, listed.approvals[0].stepKey, { decision: "approve" });
    expect(approved.statusCode).toBe(200);
    expect(approved.json()).toMatchObject({ status: "approved" });
    const done = await status(id, "succeeded");
    expect(done.result).toEqual({ read: { id: "a" }, gone: { id: "a" } });
    expect(done.stats.replayedSteps).toBe(1);
    const after = executions();
    // The read ran once (replayed after the pause), the delete once (after the approval).
    expect((after.read_record ?? 0) - (before.read_record ?? 0)).toBe(1);
    expect((after.delete_record ?? 0) - (before.delete_record ?? 0)).toBe(1);

    const again = await decide(id, listed.approvals[0].stepKey, { decision: "reject" });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.message).toContain("was approved already");
  });

  it("spends an approval only on the arguments it was given for, whatever a getter answers", async () => {
    // Until switchAt every read of `id` says "a"; after it, the first read says "victim" and
    // the others "a". A run that read the arguments twice (once for what the tool receives,
    // once for the step key) would find the approval of { id: "a" } and delete "victim".
    const switchAt = Date.now() + 3_000;
    const response = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: {
        code: `let reads = 0;
const args = { get id() { reads++; return Date.now() < input.switchAt || reads > 1 ? "a" : "victim"; } };
return await control.delete_record(args);`,
        input: { switchAt },
      },
    });
    const id = response.json().id as string;
    await status(id, "waiting");
    expect(Date.now(), "the first run asked before the getter switched").toBeLessThan(switchAt);
    const asked = (await api.call({ method: "GET", url: `/v1/jobs/${id}/approvals` })).json();
    expect(asked.approvals).toEqual([expect.objectContaining({ args: { id: "a" } })]);
    await eventually("the getter to switch", () => (Date.now() > switchAt ? true : undefined));
    expect((await decide(id, asked.approvals[0].stepKey, { decision: "approve" })).statusCode).toBe(
      200,
    );
    // The next run's call has other arguments, so another key: it asks again, and "victim" is
    // not deleted on the strength of the approval of "a".
    const again = await eventually("a second approval request", async () => {
      const listed = (await api.call({ method: "GET", url: `/v1/jobs/${id}/approvals` })).json();
      return listed.approvals.length === 2 ? listed.approvals : undefined;
    });
    expect(again).toContainEqual(
      expect.objectContaining({ args: { id: "victim" }, status: "pending" }),
    );
    expect(calls("delete_record").filter((args) => args.id === "victim")).toEqual([]);
    await decide(id, again.find((a: { status: string }) => a.status === "pending").stepKey, {
      decision: "reject",
    });
    await status(id, "failed");
  });

  it("counts an approval only for the arguments the person saw, even under the same step key", async () => {
    // As if two argument objects' step keys collided (the key's hash is not cryptographic): the
    // stored request says { id: "shown" }, the call asks for { id: "real" }.
    const id = await submit("return await control.delete_record({ id: 'real' });");
    await status(id, "waiting");
    const [asked] = (await api.call({ method: "GET", url: `/v1/jobs/${id}/approvals` })).json()
      .approvals;
    await api.db.approval.update({
      where: { jobId_stepKey: { jobId: id, stepKey: asked.stepKey } },
      data: { args: { id: "shown" } },
    });
    expect((await decide(id, asked.stepKey, { decision: "approve" })).statusCode).toBe(200);
    const failed = await status(id, "failed");
    expect(failed.error).toMatchObject({
      code: "tool_error",
      message: expect.stringContaining("was approved for other arguments"),
    });
    expect(calls("delete_record").filter((args) => args.id === "real")).toEqual([]);
  });

  it("turns a rejection into a ToolError (code rejected) the program can catch", async () => {
    const id = await submit(
      "try {\n  await control.delete_record({ id: 'b' });\n  return 'deleted';\n} catch (error) {\n  return { code: error.code, message: error.message };\n}",
    );
    await status(id, "waiting");
    // An agent asking over MCP learns why the job does not go on.
    const agent = new Client({ name: "approvals-test", version: "1.0.0" });
    await agent.connect(
      new StreamableHTTPClientTransport(new URL(`${fleet.base}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${api.key}` } },
      }),
    );
    const told = await agent.callTool({ name: "get_job", arguments: { id } });
    await agent.close();
    expect(JSON.stringify(told.content)).toContain("Waiting for a person to approve a tool call");
    const [request] = (await api.call({ method: "GET", url: `/v1/jobs/${id}/approvals` })).json()
      .approvals;
    const rejected = await decide(id, request.stepKey, { decision: "reject", reason: "not today" });
    expect(rejected.json()).toMatchObject({ status: "rejected", reason: "not today" });
    const done = await status(id, "succeeded");
    expect(done.result).toEqual({
      code: "rejected",
      message: "control.delete_record was rejected: not today",
    });
  });

  it("follows rules set per tool and per server: deny throws, allow skips the approval", async () => {
    const set = await api.call({
      method: "PUT",
      url: "/v1/servers/control/policies",
      payload: { tools: { read_record: "deny", delete_record: "allow" } },
    });
    expect(set.statusCode).toBe(200);
    expect(set.json().tools).toEqual(
      expect.arrayContaining([
        { tool: "read_record", policy: "deny", source: "tool" },
        { tool: "delete_record", policy: "allow", source: "tool" },
      ]),
    );
    const denied = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: {
        code: "try { await control.read_record({ id: 'c' }); } catch (error) { return error.code; }",
      },
    });
    expect(denied.json()).toMatchObject({ status: "succeeded", result: "denied" });
    const allowed = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: { code: "return await control.delete_record({ id: 'c' });" },
    });
    expect(allowed.json()).toMatchObject({ status: "succeeded", result: { id: "c" } });

    // A server-wide rule, under the tools' own rules; null removes a rule.
    const wide = await api.call({
      method: "PUT",
      url: "/v1/servers/control/policies",
      payload: { default: "approve", tools: { read_record: null, delete_record: null } },
    });
    const echo = wide.json().tools.find((tool: { tool: string }) => tool.tool === "echo");
    expect(echo).toEqual({ tool: "echo", policy: "approve", source: "server" });
    const waits = await submit("return await control.echo({ n: 2 });");
    await status(waits, "waiting");
    const cancelled = await api.call({ method: "POST", url: `/v1/jobs/${waits}/cancel` });
    expect(cancelled.json().status).toBe("cancelled");
    await api.call({
      method: "PUT",
      url: "/v1/servers/control/policies",
      payload: { default: null },
    });
  });

  it("answers bad decisions and rules clearly", async () => {
    const id = await submit("return 1");
    const unknown = await decide(id, "control.delete_record:x#0", { decision: "approve" });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.message).toContain("has no approval request for step");
    const bad = await decide(id, "k", { decision: "maybe" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain("body.decision must be one of approve, reject");
    const rule = await api.call({
      method: "PUT",
      url: "/v1/servers/control/policies",
      payload: { tools: { echo: "sometimes" } },
    });
    expect(rule.statusCode).toBe(400);
    const missing = await api.call({
      method: "PUT",
      url: "/v1/servers/nope/policies",
      payload: { default: "deny" },
    });
    expect(missing.statusCode).toBe(404);
  });
});
