// Tenants, with a real API, worker and MCP servers: projects and their keys, scopes, one
// project's ids answering 404 to another, per-project servers (and secrets), tool policies and
// limits, and the audit log of tool calls.
import { createHash } from "node:crypto";
import { activeJobsKey } from "@turtle/core";
import { CONTROL_SERVER, eventually, it, type TestApi, type TestFleet } from "@turtle/test-support";
import type { InjectOptions } from "fastify";
import { describe, expect } from "vitest";

let fleet: TestFleet;
let api: TestApi;

const control = (env: Record<string, string> = {}) => ({
  name: "control",
  command: process.execPath,
  args: [CONTROL_SERVER],
  env: { ANNOTATED_TOOLS: "1", ...env },
});

it.override("fleetOptions", { servers: () => [control()] });

it.beforeAll(async ({ fleet: started }) => {
  fleet = started;
  ({ api } = fleet);
});

/** Requests made with `key`. */
function as(key: string) {
  return (request: InjectOptions) =>
    api.app.inject({ ...request, headers: { authorization: `Bearer ${key}`, ...request.headers } });
}

interface Made {
  id: string;
  key: string;
  call: ReturnType<typeof as>;
}

/**
 * A new project made by the operator, and a client with its first (admin) key. The suite's
 * tenants run the control server, a stdio server: allowed unless `settings` says otherwise.
 */
async function project(
  name: string,
  settings: Record<string, number | boolean> = {},
): Promise<Made> {
  const response = await api.call({
    method: "POST",
    url: "/v1/projects",
    payload: { name, allowStdioServers: true, ...settings },
  });
  expect(response.statusCode, response.body).toBe(201);
  const { project: made, key } = response.json();
  expect(key.scopes).toEqual(["submit", "read", "admin"]);
  return { id: made.id, key: key.key, call: as(key.key) };
}

async function newKey(owner: Made, name: string, scopes: string[]) {
  const response = await owner.call({ method: "POST", url: "/v1/keys", payload: { name, scopes } });
  expect(response.statusCode, response.body).toBe(201);
  const body = response.json();
  return { id: body.id as string, call: as(body.key as string) };
}

async function finished(call: ReturnType<typeof as>, id: string) {
  return eventually(`job ${id} to end`, async () => {
    const job = (await call({ method: "GET", url: `/v1/jobs/${id}` })).json();
    return ["succeeded", "failed", "cancelled"].includes(job.status) ? job : undefined;
  });
}

async function run(call: ReturnType<typeof as>, code: string, extra: Record<string, unknown> = {}) {
  const response = await call({
    method: "POST",
    url: "/v1/jobs?wait=30",
    payload: { code, ...extra },
  });
  expect([200, 202], response.body).toContain(response.statusCode);
  return finished(call, response.json().id);
}

let acme: Made;

describe("projects and keys", () => {
  it("the operator creates projects, each with a first admin key; a project's admin may not", async () => {
    acme = await project("acme", { maxConcurrentJobs: 50 });
    const own = (await acme.call({ method: "GET", url: "/v1/project" })).json();
    expect(own).toMatchObject({
      id: acme.id,
      name: "acme",
      operator: false,
      maxConcurrentJobs: 50,
      customLimits: { maxConcurrentJobs: 50, requestsPerMinute: null },
    });
    const again = await api.call({
      method: "POST",
      url: "/v1/projects",
      payload: { name: "acme" },
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe("project_exists");
    const badName = await api.call({
      method: "POST",
      url: "/v1/projects",
      payload: { name: "Acme Inc!" },
    });
    expect(badName.statusCode).toBe(400);
    expect(badName.json().error.message).toMatch(/body\.name/);

    for (const request of [
      { method: "GET", url: "/v1/projects" },
      { method: "POST", url: "/v1/projects", payload: { name: "sneaky" } },
      { method: "PATCH", url: `/v1/projects/${acme.id}`, payload: { maxConcurrentJobs: 9999 } },
      { method: "GET", url: "/metrics" },
      { method: "GET", url: "/admin/queues/api/queues" },
    ] as const) {
      const refused = await acme.call(request);
      expect(refused.statusCode, `${request.method} ${request.url}`).toBe(403);
      expect(refused.json().error).toMatchObject({ code: "forbidden" });
    }
    const listed = (await api.call({ method: "GET", url: "/v1/projects" })).json().projects;
    expect(listed.map((p: { name: string }) => p.name)).toEqual(["acme", "default"]);
    expect(listed.find((p: { name: string }) => p.name === "default").operator).toBe(true);
  });

  it("an admin creates, lists and revokes its project's keys; each route needs its scope", async () => {
    const reader = await newKey(acme, "reader", ["read"]);
    const agent = await newKey(acme, "agent", ["submit"]);
    for (const scopes of [["root"], [], ["read", "read"]]) {
      const bad = await acme.call({
        method: "POST",
        url: "/v1/keys",
        payload: { name: "bad", scopes },
      });
      expect(bad.statusCode, JSON.stringify(scopes)).toBe(400);
    }

    expect((await reader.call({ method: "GET", url: "/v1/jobs" })).statusCode).toBe(200);
    const cannotSubmit = await reader.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return 1" },
    });
    expect(cannotSubmit.statusCode).toBe(403);
    expect(cannotSubmit.json().error.message).toMatch(/lacks the `submit` scope/);
    const cannotRegister = await agent.call({
      method: "POST",
      url: "/v1/servers",
      payload: control(),
    });
    expect(cannotRegister.statusCode).toBe(403);
    expect(cannotRegister.json().error.message).toMatch(/`admin`/);
    const submitted = await agent.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return 1" },
    });
    expect(submitted.statusCode).toBe(202);
    expect((await agent.call({ method: "GET", url: "/v1/jobs" })).statusCode).toBe(403);
    expect(
      (
        await agent.call({
          method: "POST",
          url: "/v1/keys",
          payload: { name: "x", scopes: ["admin"] },
        })
      ).statusCode,
    ).toBe(403);
    await finished(acme.call, submitted.json().id);

    const keys = (await acme.call({ method: "GET", url: "/v1/keys" })).json().keys;
    expect(keys.map((k: { name: string }) => k.name)).toEqual(["admin", "reader", "agent"]);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(
        ["createdAt", "id", "lastUsedAt", "name", "prefix", "revokedAt", "scopes"].sort(),
      );
    }

    const revoked = await acme.call({ method: "DELETE", url: `/v1/keys/${reader.id}` });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json().revokedAt).not.toBeNull();
    const after = await reader.call({ method: "GET", url: "/v1/jobs" });
    expect(after.statusCode).toBe(401);
    expect(
      (await acme.call({ method: "GET", url: "/v1/keys?revoked=true" })).json().keys,
    ).toHaveLength(3);

    // Another project's key is not there to revoke; the last admin key cannot go.
    const operatorKeys = (await api.call({ method: "GET", url: "/v1/keys" })).json().keys;
    const foreign = await acme.call({ method: "DELETE", url: `/v1/keys/${operatorKeys[0].id}` });
    expect(foreign.statusCode).toBe(404);
    const adminId = keys.find((k: { name: string }) => k.name === "admin").id;
    const last = await acme.call({ method: "DELETE", url: `/v1/keys/${adminId}` });
    expect(last.statusCode).toBe(409);
    expect(last.json().error.code).toBe("last_admin_key");
  });
});

describe("isolation between projects", () => {
  it("another project's job answers 404 on every route, and is in none of its lists", async () => {
    const theirs = await run(api.call, "return await control.echo({ secret: 'operator' });");
    expect(theirs.status).toBe("succeeded");
    const id = theirs.id;
    for (const [method, url] of [
      ["GET", `/v1/jobs/${id}`],
      ["GET", `/v1/jobs/${id}?wait=1`],
      ["GET", `/v1/jobs/${id}/program`],
      ["GET", `/v1/jobs/${id}/steps`],
      ["GET", `/v1/jobs/${id}/events`],
      ["GET", `/v1/jobs/${id}/approvals`],
      ["POST", `/v1/jobs/${id}/cancel`],
      ["POST", `/v1/jobs/${id}/resume`],
      ["POST", `/v1/jobs/${id}/approvals/x`],
    ] as const) {
      const response = await acme.call({
        method,
        url,
        ...(url.endsWith("/approvals/x") ? { payload: { decision: "approve" } } : {}),
      });
      expect(response.statusCode, `${method} ${url}`).toBe(404);
      expect(response.json().error.code).toBe("not_found");
    }
    const list = (await acme.call({ method: "GET", url: "/v1/jobs?limit=100" })).json().jobs;
    expect(list.map((job: { id: string }) => job.id)).not.toContain(id);
    const audit = await acme.call({ method: "GET", url: `/v1/audit?jobId=${id}` });
    expect(audit.json().entries).toEqual([]);
  });

  it("servers are each project's own: same names, own secrets, own tools", async () => {
    expect((await acme.call({ method: "GET", url: "/v1/servers" })).json().servers).toEqual([]);
    const unknown = await acme.call({ method: "GET", url: "/v1/servers/control/tools" });
    expect(unknown.statusCode).toBe(404);
    // acme's "control" is another registration, whose environment makes it fail to start.
    const registered = await acme.call({
      method: "POST",
      url: "/v1/servers",
      payload: control({ FAIL_ON_START: "1" }),
    });
    expect(registered.statusCode, registered.body).toBe(201);
    const failing = await run(acme.call, "return await control.echo({ a: 1 });", {
      servers: ["control"],
    });
    expect(failing.status).toBe("failed");
    const working = await run(api.call, "return await control.echo({ a: 1 });", {
      servers: ["control"],
    });
    expect(working).toMatchObject({ status: "succeeded", result: { a: 1 } });
    // Deleting acme's leaves the operator's.
    expect((await acme.call({ method: "DELETE", url: "/v1/servers/control" })).statusCode).toBe(
      204,
    );
    expect((await api.call({ method: "GET", url: "/v1/servers" })).json().servers).toHaveLength(1);
  });

  it("idempotency keys are each project's own", async () => {
    const submit = (call: ReturnType<typeof as>) =>
      call({
        method: "POST",
        url: "/v1/jobs",
        payload: { code: "return input", input: 1, idempotencyKey: "nightly-report" },
      });
    const ours = await submit(api.call);
    const theirs = await submit(acme.call);
    expect(ours.statusCode).toBe(202);
    expect(theirs.statusCode).toBe(202);
    expect(theirs.json().id).not.toBe(ours.json().id);
    expect((await submit(acme.call)).json().id).toBe(theirs.json().id);
  });

  it("the live list of jobs carries only the project's own", async () => {
    const controller = new AbortController();
    const stream = await fetch(`${fleet.base}/v1/events`, {
      headers: { authorization: `Bearer ${acme.key}` },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    const read = async (until: (text: string) => boolean) => {
      while (!until(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended: ${text}`);
        text += new TextDecoder().decode(value);
      }
    };
    await read((t) => t.includes("streaming"));
    const operatorJob = (
      await api.call({ method: "POST", url: "/v1/jobs", payload: { code: "return 1" } })
    ).json().id;
    await finished(api.call, operatorJob);
    const ownJob = (
      await acme.call({ method: "POST", url: "/v1/jobs", payload: { code: "return 2" } })
    ).json().id;
    await read((t) => t.includes(ownJob) && t.includes('"succeeded"'));
    controller.abort();
    expect(text).not.toContain(operatorJob);
  });
});

describe("limits", () => {
  it("a project's concurrent jobs: 429 with Retry-After past the limit, slots back as jobs end", async () => {
    const tight = await project("tight", { maxConcurrentJobs: 2 });
    const registered = await tight.call({ method: "POST", url: "/v1/servers", payload: control() });
    expect(registered.statusCode).toBe(201);
    const slow = { code: "await control.sleep({ ms: 1500 }); return 'slept';" };
    const first = await tight.call({ method: "POST", url: "/v1/jobs", payload: slow });
    const second = await tight.call({ method: "POST", url: "/v1/jobs", payload: slow });
    expect([first.statusCode, second.statusCode]).toEqual([202, 202]);
    const third = await tight.call({ method: "POST", url: "/v1/jobs", payload: slow });
    expect(third.statusCode).toBe(429);
    expect(third.headers["retry-after"]).toBe("1");
    expect(third.json().error).toMatchObject({ code: "concurrency_limit" });
    expect(third.json().error.message).toMatch(/project "tight" has 2 jobs queued or running/);
    // Other projects are not held back.
    expect(
      (await api.call({ method: "POST", url: "/v1/jobs", payload: { code: "return 1" } }))
        .statusCode,
    ).toBe(202);
    expect((await tight.call({ method: "GET", url: "/v1/project" })).json().activeJobs).toBe(2);

    await finished(tight.call, first.json().id);
    await finished(tight.call, second.json().id);
    const later = await tight.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return 3" },
    });
    expect(later.statusCode).toBe(202);
    expect((await finished(tight.call, later.json().id)).result).toBe(3);

    // A job waiting for a person holds no slot.
    const waiting = await tight.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return await control.delete_record({ id: 'r1' });" },
    });
    await eventually("the job to wait for approval", async () => {
      const job = (
        await tight.call({ method: "GET", url: `/v1/jobs/${waiting.json().id}` })
      ).json();
      return job.status === "waiting" ? job : undefined;
    });
    const both = await Promise.all([
      tight.call({ method: "POST", url: "/v1/jobs", payload: slow }),
      tight.call({ method: "POST", url: "/v1/jobs", payload: slow }),
    ]);
    expect(both.map((r) => r.statusCode)).toEqual([202, 202]);
  });

  it("a slot left behind by a job that ended elsewhere is freed from Postgres when the slots look full", async () => {
    const leaky = await project("leaky", { maxConcurrentJobs: 1 });
    const done = await run(leaky.call, "return 1");
    expect(done.status).toBe("succeeded");
    // As if a worker had died between recording the end and giving the slot back, 11 s ago.
    await api.app.redis.zadd(
      activeJobsKey(api.config.TURTLE_QUEUE, leaky.id),
      Date.now() - 11_000,
      done.id,
    );
    const next = await leaky.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return 2" },
    });
    expect(next.statusCode, next.body).toBe(202);
  });

  it("a project's request rate: 429 with Retry-After past requestsPerMinute; others unaffected", async () => {
    const chatty = await project("chatty");
    // Its key is now cached with the default limit…
    expect((await chatty.call({ method: "GET", url: "/v1/project" })).json()).toMatchObject({
      requestsPerMinute: 6000,
      customLimits: { requestsPerMinute: null },
    });
    const patched = await api.call({
      method: "PATCH",
      url: `/v1/projects/${chatty.id}`,
      payload: { requestsPerMinute: 5 },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({
      requestsPerMinute: 5,
      customLimits: { requestsPerMinute: 5 },
    });
    const badLimit = await api.call({
      method: "PATCH",
      url: `/v1/projects/${chatty.id}`,
      payload: { requestsPerMinute: 0 },
    });
    expect(badLimit.statusCode).toBe(400);
    const unknown = await api.call({
      method: "PATCH",
      url: "/v1/projects/00000000-0000-4000-8000-00000000abcd",
      payload: { requestsPerMinute: 5 },
    });
    expect(unknown.statusCode).toBe(404);

    // …which the change dropped here at once (elsewhere within 10 s).
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<Made["call"]>> | undefined;
    for (let i = 0; i < 7; i++) {
      const response = await chatty.call({ method: "GET", url: "/v1/jobs" });
      statuses.push(response.statusCode);
      if (response.statusCode === 429) refused ??= response;
    }
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(5);
    expect(statuses.at(-1)).toBe(429);
    expect(refused?.json().error).toMatchObject({ code: "rate_limited" });
    expect(refused?.json().error.message).toMatch(/project "chatty" made more than 5 requests/);
    const retryAfter = Number(refused?.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect((await api.call({ method: "GET", url: "/v1/jobs" })).statusCode).toBe(200);
  });
});

describe("tool policies per project, and the audit log", () => {
  it("records every call — executed, failed or refused — with its arguments' hash and timing", async () => {
    const denied = await api.call({
      method: "PUT",
      url: "/v1/servers/control/policies",
      payload: { tools: { noop: "deny" } },
    });
    expect(denied.statusCode).toBe(200);
    const job = await run(
      api.call,
      `const echoed = await control.echo({ b: 1, a: [2, { d: 3, c: 4 }] });
       try { await control.fail({ message: "boom" }); } catch {}
       try { await control.noop({}); } catch (error) { return [echoed, error.code]; }
       return "noop ran";`,
    );
    expect(job).toMatchObject({ status: "succeeded", result: [{ b: 1 }, "denied"] });

    const page = (await api.call({ method: "GET", url: `/v1/audit?jobId=${job.id}` })).json();
    const entries = [...page.entries].reverse();
    expect(entries.map((e: { tool: string; outcome: string }) => [e.tool, e.outcome])).toEqual([
      ["echo", "succeeded"],
      ["fail", "failed"],
      ["noop", "denied"],
    ]);
    const canonical = '{"a":[2,{"c":4,"d":3}],"b":1}';
    expect(entries[0]).toMatchObject({
      jobId: job.id,
      server: "control",
      argsHash: createHash("sha256").update(canonical).digest("hex"),
      errorCode: null,
      attempt: 1,
    });
    expect(entries[1].errorCode).toBeTypeOf("string");
    expect(entries[2].errorCode).toBe("denied");
    for (const entry of entries) {
      expect(entry.durationMs).toBeGreaterThanOrEqual(0);
      expect(Date.parse(entry.finishedAt)).toBeGreaterThanOrEqual(Date.parse(entry.startedAt));
    }
    // Paged newest first.
    const first = (
      await api.call({ method: "GET", url: `/v1/audit?jobId=${job.id}&limit=2` })
    ).json();
    expect(first.entries).toHaveLength(2);
    const rest = (
      await api.call({
        method: "GET",
        url: `/v1/audit?jobId=${job.id}&limit=2&cursor=${first.nextCursor}`,
      })
    ).json();
    expect(rest).toMatchObject({ entries: [{ tool: "echo" }], nextCursor: null });
    expect(
      (await api.call({ method: "GET", url: "/v1/audit?outcome=denied&tool=noop" })).json().entries
        .length,
    ).toBeGreaterThanOrEqual(1);
    const badCursor = await api.call({ method: "GET", url: "/v1/audit?cursor=abc" });
    expect(badCursor.statusCode).toBe(400);

    // The log is the admin's.
    const reader = await newKey(acme, "auditor", ["read"]);
    expect((await reader.call({ method: "GET", url: "/v1/audit" })).statusCode).toBe(403);
  });

  it("one project's policy does not bind another's server of the same name", async () => {
    const other = await project("other");
    expect(
      (await other.call({ method: "POST", url: "/v1/servers", payload: control() })).statusCode,
    ).toBe(201);
    const policies = (
      await other.call({ method: "GET", url: "/v1/servers/control/policies" })
    ).json();
    expect(policies.default).toBeNull();
    expect(policies.tools.find((t: { tool: string }) => t.tool === "noop")).toMatchObject({
      policy: "allow",
      source: "annotations",
    });
    const ran = await run(other.call, "await control.noop({}); return 'ran';");
    expect(ran).toMatchObject({ status: "succeeded", result: "ran" });
    const audit = (await other.call({ method: "GET", url: `/v1/audit?jobId=${ran.id}` })).json();
    expect(audit.entries).toMatchObject([{ tool: "noop", outcome: "succeeded" }]);

    // A server's policies go with it: registered again, it starts from its annotations.
    const set = await other.call({
      method: "PUT",
      url: "/v1/servers/control/policies",
      payload: { default: "deny" },
    });
    expect(set.json().default).toBe("deny");
    expect((await other.call({ method: "DELETE", url: "/v1/servers/control" })).statusCode).toBe(
      204,
    );
    expect(
      (await other.call({ method: "POST", url: "/v1/servers", payload: control() })).statusCode,
    ).toBe(201);
    const fresh = (await other.call({ method: "GET", url: "/v1/servers/control/policies" })).json();
    expect(fresh.default).toBeNull();
    expect((await run(other.call, "await control.noop({}); return 'ran';")).result).toBe("ran");
  });
});

describe("stdio servers, which only projects the operator allows may run", () => {
  it("are refused at registration, at connect and at run time to a project not allowed them", async () => {
    const plain = await project("plain", { allowStdioServers: false });
    expect((await plain.call({ method: "GET", url: "/v1/project" })).json()).toMatchObject({
      allowStdioServers: false,
    });
    const refused = await plain.call({ method: "POST", url: "/v1/servers", payload: control() });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error).toMatchObject({ code: "stdio_not_allowed" });
    expect(refused.json().error.message).toMatch(
      /register it as an HTTP server \(url\) instead, or ask the operator .*allowStdioServers: true/,
    );
    const put = await plain.call({ method: "PUT", url: "/v1/servers/control", payload: control() });
    expect(put.statusCode).toBe(403);
    // HTTP servers are the project's to register.
    const http = await plain.call({
      method: "POST",
      url: "/v1/servers",
      payload: { name: "remote", url: "http://127.0.0.1:9/mcp" },
    });
    expect(http.statusCode, http.body).toBe(201);
    // Only the operator allows them.
    const self = await plain.call({
      method: "PATCH",
      url: `/v1/projects/${plain.id}`,
      payload: { allowStdioServers: true },
    });
    expect(self.statusCode).toBe(403);
    const allowed = await api.call({
      method: "PATCH",
      url: `/v1/projects/${plain.id}`,
      payload: { allowStdioServers: true },
    });
    expect(allowed.json()).toMatchObject({ allowStdioServers: true });
    expect(
      (await plain.call({ method: "POST", url: "/v1/servers", payload: control() })).statusCode,
    ).toBe(201);
    expect(
      (await run(plain.call, "return await control.echo({ a: 1 });", { servers: ["control"] }))
        .result,
    ).toEqual({
      a: 1,
    });
    expect((await plain.call({ method: "GET", url: "/v1/servers/control/tools" })).statusCode).toBe(
      200,
    );

    // Taken away again: the registration stays, but neither the API nor a worker starts it.
    await api.call({
      method: "PATCH",
      url: `/v1/projects/${plain.id}`,
      payload: { allowStdioServers: false },
    });
    const tools = await plain.call({ method: "GET", url: "/v1/servers/control/tools" });
    expect(tools.statusCode).toBe(502);
    expect(tools.json().error.message).toMatch(/this project may not run stdio MCP servers/);
    const job = await eventually("a worker to refuse the project's stdio server", async () => {
      const ran = await run(plain.call, "return await control.echo({ a: 1 });", {
        servers: ["control"],
      });
      return ran.status === "failed" ? ran : undefined;
    });
    expect(job.error.message).toMatch(/this project may not run stdio MCP servers/);
  });
});
