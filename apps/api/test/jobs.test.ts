// The jobs API without a worker: what the API itself does to the Job rows, the queue and the
// channels. A worker's part (running, finishing) is played here by writing the row and
// publishing its event, as a worker does; e2e.test.ts runs a real worker.
import { randomUUID } from "node:crypto";
import { request } from "node:http";
import {
  channels,
  createRedis,
  DEFAULT_PROJECT_ID,
  JobEventHub,
  publishJobEvent,
  queueEntryId,
} from "@turtle/core";
import type { JobStatus } from "@turtle/db";
import { EVERYTHING_SERVER, eventually, it, startApi, type TestApi } from "@turtle/test-support";
import { describe, expect, vi } from "vitest";

let api: TestApi & { database: Awaited<ReturnType<typeof startApi>>["database"] };

it.beforeAll(async ({ api: started }) => {
  api = started;
  await api.call({
    method: "PUT",
    url: "/v1/servers/everything",
    payload: { command: process.execPath, args: [EVERYTHING_SERVER, "stdio"] },
  });
  await api.call({ method: "PUT", url: "/v1/servers/memory", payload: { command: "node" } });
});

async function submit(payload: unknown, url = "/v1/jobs") {
  return api.call({ method: "POST", url, payload: payload as Record<string, unknown> });
}

/** Plays a worker finishing a job: the row first, then the event, as workers must. */
async function finish(id: string, status: JobStatus, fields: Record<string, unknown> = {}) {
  await api.db.job.update({
    where: { id },
    data: { status, finishedAt: new Date(), startedAt: new Date(), ...fields },
  });
  await publishJobEvent(api.app.redis, api.config.TURTLE_QUEUE, {
    jobId: id,
    projectId: DEFAULT_PROJECT_ID,
    status,
  });
}

/** Whether a `?wait=` request is waiting for this job on this app (its waiter is registered). */
function waiting(app: TestApi["app"], id: string): true | undefined {
  const waiters = (app.jobEvents as unknown as { waiters: Map<string, Set<unknown>> }).waiters;
  return waiters.has(id) ? true : undefined;
}

describe("POST /v1/jobs", () => {
  it("stores the job as queued, run 0, with defaults, then queues it: 202 { id, status }", async () => {
    const response = await submit({ code: "return input.a + 1", input: { a: 1 } });
    expect(response.statusCode).toBe(202);
    const { id, status } = response.json();
    expect(response.json()).toEqual({ id, status: "queued" });
    expect(status).toBe("queued");
    const row = await api.db.job.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({
      status: "queued",
      run: 0,
      code: "return input.a + 1",
      input: { a: 1 },
      servers: [],
      timeoutMs: api.config.JOB_TIMEOUT_MS,
      memoryMb: api.config.JOB_MEMORY_MB,
      idempotencyKey: null,
    });
    const entry = await api.app.queue.getJob(queueEntryId(id, 0));
    expect(entry?.name).toBe("run");
    expect(entry?.data).toEqual({ jobId: id, run: 0, projectId: DEFAULT_PROJECT_ID });
  });

  it("queues each job at its place among its project's active jobs, so projects take turns", async () => {
    const made = await api.call({
      method: "POST",
      url: "/v1/projects",
      payload: { name: `turns-${randomUUID().slice(0, 8)}` },
    });
    expect(made.statusCode, made.body).toBe(201);
    const { key } = made.json();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await api.app.inject({
        method: "POST",
        url: "/v1/jobs",
        headers: { authorization: `Bearer ${key.key}` },
        payload: { code: "return 1" },
      });
      ids.push(response.json().id);
    }
    const entries = await Promise.all(ids.map((id) => api.app.queue.getJob(queueEntryId(id, 0))));
    // BullMQ takes lower numbers first: this project's first job goes before the default
    // project's next one, whatever that project has queued already.
    expect(entries.map((entry) => entry?.opts.priority)).toEqual([1, 2, 3]);
    const next = (await submit({ code: "return 1" })).json().id;
    const defaults = await api.app.queue.getJob(queueEntryId(next, 0));
    expect(defaults?.opts.priority).toBeGreaterThan(1);
    const head = await api.app.queue.getPrioritized(0, -1);
    const order = head.map((entry) => entry.data.jobId);
    expect(order.indexOf(ids[0] as string)).toBeLessThan(order.indexOf(next));
  });

  it("keeps servers, limits and the idempotency key as given", async () => {
    const response = await submit({
      code: "return 1",
      servers: ["everything", "memory"],
      timeoutMs: 1234,
      memoryMb: 64,
      idempotencyKey: `k-${randomUUID()}`,
      input: null,
    });
    expect(response.statusCode).toBe(202);
    const row = await api.db.job.findUniqueOrThrow({ where: { id: response.json().id } });
    expect(row).toMatchObject({
      servers: ["everything", "memory"],
      timeoutMs: 1234,
      memoryMb: 64,
      input: null,
    });
  });

  it.each([
    [{}, "body.code is required"],
    [{ code: 5 }, "body.code must be a string, not a number"],
    [{ code: "" }, "body.code must NOT have fewer than 1 characters"],
    [{ code: "  \n " }, "body.code is blank"],
    [{ code: "return 1", servers: "everything" }, "body.servers must be an array"],
    [{ code: "return 1", servers: [1] }, "body.servers[0] must be a string"],
    [{ code: "return 1", servers: ["everything", "nope", "gone"] }, '"nope", "gone"'],
    [{ code: "return 1", timeoutMs: 0 }, "body.timeoutMs must be >= 1"],
    [{ code: "return 1", timeoutMs: 1.5 }, "body.timeoutMs must be an integer"],
    [{ code: "return 1", timeoutMs: "100" }, "body.timeoutMs must be an integer, not a string"],
    [{ code: "return 1", timeoutMs: 10 ** 9 }, "body.timeoutMs must be <= 900000"],
    [{ code: "return 1", memoryMb: 4 }, "body.memoryMb must be >= 8"],
    [{ code: "return 1", memoryMb: 4096 }, "body.memoryMb must be <= 1024"],
    [{ code: "return 1", idempotencyKey: "" }, "body.idempotencyKey must NOT have fewer"],
    [
      { code: "return 1", idempotencyKey: "k".repeat(201) },
      "body.idempotencyKey must NOT have more",
    ],
    [{ code: "return 1", idempotencyKey: 7 }, "body.idempotencyKey must be a string"],
    [{ code: "return 1", timeout: 5 }, "body.timeout is not a known field"],
    [[1, 2], "body must be an object, not an array"],
  ])("rejects %j with 400 naming the field", async (payload, message) => {
    const response = await submit(payload);
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toContain(message);
    expect(["invalid_request", "unknown_server"]).toContain(response.json().error.code);
  });

  it("explains the fix along with the fault", async () => {
    const response = await submit({ code: "return 1", timeoutMs: 0 });
    expect(response.json().error.message).toBe(
      `body.timeoutMs must be >= 1 (got 0): the job's wall-clock limit in milliseconds: an integer from 1 to 900000 (default 60000)`,
    );
    const unknown = await submit({ code: "return 1", servers: ["nope"] });
    expect(unknown.json().error).toEqual({
      code: "unknown_server",
      message:
        'body.servers names servers that are not registered: "nope"; registered: everything, memory (register one with POST /v1/servers)',
    });
  });

  it("rejects bad JSON (400), other content types (415) and bad ?wait= (400)", async () => {
    const bad = await api.call({
      method: "POST",
      url: "/v1/jobs",
      headers: { "content-type": "application/json" },
      payload: '{"code": "return 1"',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toEqual({
      code: "invalid_json",
      message: expect.stringMatching(/^the body is not valid JSON \(.+\): send a JSON object$/),
    });
    const poisoned = await api.call({
      method: "POST",
      url: "/v1/jobs",
      headers: { "content-type": "application/json" },
      payload: '{"code": "return 1", "input": {"__proto__": {"admin": true}}}',
    });
    expect(poisoned.statusCode).toBe(400);
    expect(poisoned.json().error.message).toContain('a key named "__proto__"');
    const deep = await api.call({
      method: "POST",
      url: "/v1/jobs",
      headers: { "content-type": "application/json" },
      payload: `{"code": "return 1", "input": ${"[".repeat(300)}${"]".repeat(300)}}`,
    });
    expect(deep.statusCode).toBe(400);
    expect(deep.json().error.message).toBe(
      "input nests arrays and objects more than 256 levels deep: flatten it",
    );
    const empty = await api.call({
      method: "POST",
      url: "/v1/jobs",
      headers: { "content-type": "application/json" },
    });
    expect(empty.statusCode).toBe(400);
    const text = await api.call({
      method: "POST",
      url: "/v1/jobs",
      headers: { "content-type": "text/plain" },
      payload: "return 1",
    });
    expect(text.statusCode).toBe(415);
    expect(text.json().error.code).toBe("unsupported_media_type");
    for (const wait of ["0", "-1", "61", "soon"]) {
      const response = await submit({ code: "return 1" }, `/v1/jobs?wait=${wait}`);
      expect(response.statusCode, wait).toBe(400);
      expect(response.json().error.message).toContain("query.wait");
    }
  });

  it("returns the first job for a repeated idempotency key, also under concurrency", async () => {
    const key = `key-${randomUUID()}`;
    const first = await submit({ code: "return 1", idempotencyKey: key });
    expect(first.statusCode).toBe(202);
    const again = await submit({ code: "return 2", idempotencyKey: key });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first.json());

    const raced = `race-${randomUUID()}`;
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => submit({ code: "return 1", idempotencyKey: raced })),
    );
    const ids = new Set(responses.map((response) => response.json().id));
    expect(ids.size).toBe(1);
    expect(responses.filter((response) => response.statusCode === 202)).toHaveLength(1);
    expect(await api.db.job.count({ where: { idempotencyKey: raced } })).toBe(1);
    const [id] = ids;
    expect(await api.app.queue.getJob(queueEntryId(String(id), 0))).toBeDefined();
  });

  it("with ?wait= answers when the job ends: 200 and the whole job", async () => {
    const idempotencyKey = `wait-${randomUUID()}`;
    const submitted = submit({ code: "return 42", idempotencyKey }, "/v1/jobs?wait=30");
    const id = await eventually("the job to be stored", async () => {
      const row = await api.db.job.findUnique({
        where: { projectId_idempotencyKey: { projectId: DEFAULT_PROJECT_ID, idempotencyKey } },
      });
      return row?.id;
    });
    await eventually("the request to wait", () => waiting(api.app, id));
    await finish(id, "succeeded", { result: 42, executedSteps: 0, attempts: 1, wallMs: 5 });
    const response = await submitted;
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      id,
      status: "succeeded",
      result: 42,
      error: null,
      stats: { attempts: 1, wallMs: 5 },
    });
  });

  it("with ?wait= answers 202 and the job as it is when the wait runs out", async () => {
    const response = await submit({ code: "return 1" }, "/v1/jobs?wait=0.05");
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ status: "queued", result: null, logs: [] });
  });

  it("answers 429 with Retry-After while the queue is full, but still replays idempotent keys", async () => {
    const full = await startApi({
      database: api.database,
      env: { MAX_QUEUE_DEPTH: "2" },
      app: { queueDepthCacheMs: 0 },
    });
    try {
      const key = `full-${randomUUID()}`;
      const first = await full.call({
        method: "POST",
        url: "/v1/jobs",
        payload: { code: "return 1", idempotencyKey: key },
      });
      expect(first.statusCode).toBe(202);
      expect(
        (await full.call({ method: "POST", url: "/v1/jobs", payload: { code: "return 1" } }))
          .statusCode,
      ).toBe(202);
      const rejected = await full.call({
        method: "POST",
        url: "/v1/jobs",
        payload: { code: "return 1" },
      });
      expect(rejected.statusCode).toBe(429);
      expect(rejected.headers["retry-after"]).toBe("2");
      expect(rejected.json().error.code).toBe("queue_full");
      expect(rejected.json().error.message).toContain("MAX_QUEUE_DEPTH");
      const replayed = await full.call({
        method: "POST",
        url: "/v1/jobs",
        payload: { code: "return 1", idempotencyKey: key },
      });
      expect(replayed.statusCode).toBe(200);
      expect(replayed.json().id).toBe(first.json().id);
    } finally {
      await full.close();
    }
  });

  it("fails the job with enqueue_failed and answers 503 when Redis refuses the entry", async () => {
    const cut = await startApi({ database: api.database, app: { queueDepthCacheMs: 3_600_000 } });
    try {
      // Reads (and caches) the queue depth while Redis is reachable.
      const ok = await cut.call({ method: "POST", url: "/v1/jobs", payload: { code: "return 1" } });
      expect(ok.statusCode).toBe(202);
      // Redis goes away between the project's concurrency slot being taken (played here: with
      // Redis gone the slot itself would answer 503 queue_unavailable, recording nothing) and
      // the queue entry being added.
      vi.spyOn(cut.app.activeJobs, "take").mockResolvedValue(1);
      cut.app.redis.disconnect();
      const response = await cut.call({
        method: "POST",
        url: "/v1/jobs",
        payload: { code: "return 'lost'" },
      });
      expect(response.statusCode).toBe(503);
      expect(response.json().error.code).toBe("enqueue_failed");
      const row = await cut.db.job.findFirstOrThrow({ where: { code: "return 'lost'" } });
      expect(row.status).toBe("failed");
      expect(row.error).toMatchObject({ code: "enqueue_failed", name: "EnqueueError" });
      expect(row.finishedAt).not.toBeNull();
    } finally {
      await cut.close();
    }
  });

  it("limits code by UTF-8 bytes (MAX_CODE_BYTES) and bodies by MAX_BODY_BYTES (413)", async () => {
    const small = await startApi({
      database: api.database,
      env: { MAX_CODE_BYTES: "100", MAX_BODY_BYTES: "1000" },
    });
    try {
      const post = (payload: unknown) =>
        small.call({ method: "POST", url: "/v1/jobs", payload: payload as Record<string, string> });
      expect((await post({ code: "é".repeat(50) })).statusCode).toBe(202);
      const over = await post({ code: "é".repeat(51) });
      expect(over.statusCode).toBe(400);
      expect(over.json().error).toEqual({
        code: "code_too_large",
        message: expect.stringContaining("body.code is 102 bytes, over the limit of 100"),
      });
      const huge = await post({ code: "return 1", input: "x".repeat(2000) });
      expect(huge.statusCode).toBe(413);
      expect(huge.json().error.code).toBe("payload_too_large");
    } finally {
      await small.close();
    }
  });
});

describe("GET /v1/jobs/:id", () => {
  it("answers the whole job", async () => {
    const { id } = (await submit({ code: "return 1", servers: ["memory"] })).json();
    await finish(id, "failed", {
      error: {
        code: "tool_error",
        name: "ToolError",
        message: "boom",
        line: 3,
        column: 7,
        server: "memory",
        tool: "read_graph",
        stack: "hidden",
      },
      logs: [{ level: "log", message: "hi", at: 1 }],
      executedSteps: 2,
      replayedSteps: 1,
      attempts: 1,
      wallMs: 12,
      cpuMs: 3,
    });
    const response = await api.call({ method: "GET", url: `/v1/jobs/${id}` });
    expect(response.statusCode).toBe(200);
    const job = response.json();
    expect(job).toEqual({
      id,
      status: "failed",
      result: null,
      resultTruncated: false,
      error: {
        code: "tool_error",
        name: "ToolError",
        message: "boom",
        line: 3,
        column: 7,
        server: "memory",
        tool: "read_graph",
      },
      logs: [{ level: "log", message: "hi", at: 1 }],
      stats: { executedSteps: 2, replayedSteps: 1, attempts: 1, wallMs: 12, cpuMs: 3 },
      servers: ["memory"],
      timeoutMs: api.config.JOB_TIMEOUT_MS,
      memoryMb: api.config.JOB_MEMORY_MB,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      startedAt: expect.any(String),
      finishedAt: expect.any(String),
    });
  });

  it("answers 404 for unknown and malformed ids", async () => {
    for (const id of [randomUUID(), "not-a-uuid", "1", "%00"]) {
      const response = await api.call({ method: "GET", url: `/v1/jobs/${id}` });
      expect(response.statusCode, id).toBe(404);
      expect(response.json().error.code).toBe("not_found");
    }
    const long = await api.call({ method: "GET", url: `/v1/jobs/${"x".repeat(500)}` });
    expect(long.statusCode).toBe(400);
    expect(long.json().error).toEqual({
      code: "invalid_request",
      message: "a part of the path is too long: ids and names are at most 100 characters",
    });
  });

  it("waits with ?wait= too, and answers at once for a job that already ended", async () => {
    const { id } = (await submit({ code: "return 1" })).json();
    const pending = api.call({ method: "GET", url: `/v1/jobs/${id}?wait=30` });
    await eventually("the request to wait", () => waiting(api.app, id));
    await finish(id, "cancelled");
    expect((await pending).statusCode).toBe(200);
    const again = await api.call({ method: "GET", url: `/v1/jobs/${id}?wait=30` });
    expect(again.statusCode).toBe(200);
    expect(again.json().status).toBe("cancelled");
  });

  it("stops waiting when the client hangs up (over a real socket)", async () => {
    const other = await startApi({ database: api.database });
    try {
      const url = await other.app.listen({ host: "127.0.0.1", port: 0 });
      const { id } = (
        await other.call({ method: "POST", url: "/v1/jobs", payload: { code: "return 1" } })
      ).json();
      const client = request(`${url}/v1/jobs/${id}?wait=60`, {
        agent: false,
        headers: { authorization: `Bearer ${other.key}` },
      });
      const gone = new Promise((resolve) => client.once("error", resolve));
      client.end();
      await eventually("the request to wait", () => waiting(other.app, id));
      client.destroy();
      await gone;
      await eventually("the wait to be dropped", () => (waiting(other.app, id) ? undefined : true));
    } finally {
      await other.close();
    }
  });

  it("ends waits when the app closes", async () => {
    const other = await startApi({ database: api.database });
    const { id } = (
      await other.call({ method: "POST", url: "/v1/jobs", payload: { code: "return 1" } })
    ).json();
    const pending = other.call({ method: "GET", url: `/v1/jobs/${id}?wait=60` });
    await eventually("the request to wait", () => waiting(other.app, id));
    await other.close();
    const response = await pending;
    expect(response.statusCode).toBe(202);
    expect(response.json().status).toBe("queued");
  });
});

describe("GET /v1/jobs", () => {
  it("pages newest first with a cursor, and filters by status", async () => {
    const created = await api.db.job.createManyAndReturn({
      data: Array.from({ length: 12 }, (_, i) => ({
        projectId: DEFAULT_PROJECT_ID,
        code: `return ${i}`,
        timeoutMs: 1000,
        memoryMb: 64,
        // Ties on createdAt are broken by id.
        createdAt: new Date(Date.UTC(2030, 0, 1, 0, 0, Math.floor(i / 3))),
        status: i % 2 === 0 ? ("succeeded" as const) : ("failed" as const),
      })),
    });
    const expected = (
      await api.db.job.findMany({
        where: { projectId: DEFAULT_PROJECT_ID },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      })
    ).map((job) => job.id);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? "" : `&cursor=${cursor}`;
      const response = await api.call({ method: "GET", url: `/v1/jobs?limit=5${query}` });
      expect(response.statusCode).toBe(200);
      const page: { jobs: Array<{ id: string }>; nextCursor: string | null } = response.json();
      expect(page.jobs.length).toBeLessThanOrEqual(5);
      seen.push(...page.jobs.map((job) => job.id));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(seen).toEqual(expected);

    const first = await api.call({ method: "GET", url: "/v1/jobs" });
    expect(first.json().jobs).toHaveLength(Math.min(20, expected.length));
    expect(Object.keys(first.json().jobs[0]).sort()).toEqual(
      ["createdAt", "finishedAt", "id", "servers", "startedAt", "status"].sort(),
    );

    const failed = await api.call({ method: "GET", url: "/v1/jobs?status=failed&limit=100" });
    const failedIds = failed.json().jobs.map((job: { id: string }) => job.id);
    expect(failedIds).toEqual(
      expect.arrayContaining(created.filter((job) => job.status === "failed").map((job) => job.id)),
    );
    expect(failed.json().jobs.every((job: { status: string }) => job.status === "failed")).toBe(
      true,
    );
  });

  it("filters by server (named by the job, or called by it) and by creation time", async () => {
    const at = (minute: number) => new Date(Date.UTC(2031, 0, 1, 0, minute));
    const named = await api.db.job.create({
      data: {
        projectId: DEFAULT_PROJECT_ID,
        code: "1",
        timeoutMs: 1000,
        memoryMb: 64,
        servers: ["everything"],
        createdAt: at(1),
      },
    });
    const called = await api.db.job.create({
      data: {
        projectId: DEFAULT_PROJECT_ID,
        code: "2",
        timeoutMs: 1000,
        memoryMb: 64,
        createdAt: at(2),
        steps: {
          create: {
            key: "everything.echo:abc:0",
            seq: 0,
            server: "everything",
            tool: "echo",
            status: "succeeded",
            attempt: 1,
            startedAt: at(2),
            finishedAt: at(2),
          },
        },
      },
    });
    const other = await api.db.job.create({
      data: {
        projectId: DEFAULT_PROJECT_ID,
        code: "3",
        timeoutMs: 1000,
        memoryMb: 64,
        servers: ["memory"],
        createdAt: at(3),
      },
    });
    const ids = async (query: string) => {
      const response = await api.call({ method: "GET", url: `/v1/jobs?limit=100&${query}` });
      expect(response.statusCode).toBe(200);
      return response.json().jobs.map((job: { id: string }) => job.id);
    };
    const window = `since=${at(0).toISOString()}&until=${at(10).toISOString()}`;
    expect(await ids(window)).toEqual([other.id, called.id, named.id]);
    expect(await ids(`${window}&server=everything`)).toEqual([called.id, named.id]);
    expect(await ids(`${window}&server=memory`)).toEqual([other.id]);
    expect(
      await ids(`since=${at(2).toISOString()}&until=${at(3).toISOString()}&server=everything`),
    ).toEqual([called.id]);
    // The filters and the cursor together.
    const first = await api.call({ method: "GET", url: `/v1/jobs?limit=1&${window}` });
    const next = await api.call({
      method: "GET",
      url: `/v1/jobs?limit=5&${window}&cursor=${first.json().nextCursor}`,
    });
    expect(next.json().jobs.map((job: { id: string }) => job.id)).toEqual([called.id, named.id]);
  });

  it.each([
    ["since=yesterday", "query.since must be a date and time such as 2026-11-24T08:00:00Z"],
    ["until=2026-13-45", "query.until must be a date and time"],
    ["since=1", "query.since must be a date and time"],
    ["since=2026-11-24 08:00", "query.since must be a date and time"],
    ["since=-000001-01-01T00:00:00Z", "query.since must be a date and time"],
    ["server=", "query.server must NOT have fewer than 1 characters"],
    [
      "status=done",
      "query.status must be one of queued, running, waiting, succeeded, failed, cancelled",
    ],
    ["limit=0", "query.limit must be >= 1"],
    ["limit=101", "query.limit must be <= 100"],
    ["limit=ten", "query.limit must be an integer"],
    ["cursor=garbage", "query.cursor is not a cursor this API returned"],
    ["cursor=WzEsMl0", "query.cursor is not a cursor this API returned"],
    ["page=2", "query.page is not a known field"],
  ])("rejects ?%s with 400", async (query, message) => {
    const response = await api.call({ method: "GET", url: `/v1/jobs?${query}` });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toContain(message);
  });
});

describe("GET /v1/jobs/:id/program", () => {
  it("answers what the job runs: code, input, servers and limits", async () => {
    const submitted = await submit({
      code: "return input.n * 2",
      input: { n: 21 },
      servers: ["everything"],
      timeoutMs: 5000,
    });
    const { id } = submitted.json();
    const response = await api.call({ method: "GET", url: `/v1/jobs/${id}/program` });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      id,
      code: "return input.n * 2",
      input: { n: 21 },
      servers: ["everything"],
      timeoutMs: 5000,
      memoryMb: api.config.JOB_MEMORY_MB,
    });
    const missing = await api.call({ method: "GET", url: `/v1/jobs/${randomUUID()}/program` });
    expect(missing.statusCode).toBe(404);
  });
});

describe("GET /v1/jobs/:id/steps", () => {
  it("pages a job's steps in execution order", async () => {
    const { id } = (await submit({ code: "return 1" })).json();
    const at = new Date("2030-01-01T00:00:00.000Z");
    await api.db.step.createMany({
      data: Array.from({ length: 5 }, (_, seq) => ({
        jobId: id,
        key: `memory/read_graph:h${seq}#0`,
        seq,
        server: "memory",
        tool: "read_graph",
        status: seq === 4 ? ("failed" as const) : ("succeeded" as const),
        result: { seq },
        error: seq === 4 ? { message: "nope" } : undefined,
        attempt: 1,
        replays: seq < 2 ? 1 : 0,
        startedAt: at,
        finishedAt: new Date(at.getTime() + seq),
      })),
    });
    const first = await api.call({ method: "GET", url: `/v1/jobs/${id}/steps?limit=2` });
    expect(first.statusCode).toBe(200);
    expect(first.json().steps).toEqual([
      {
        key: "memory/read_graph:h0#0",
        server: "memory",
        tool: "read_graph",
        status: "succeeded",
        attempt: 1,
        replays: 1,
        replayed: true,
        startedAt: at.toISOString(),
        finishedAt: at.toISOString(),
        durationMs: 0,
        error: null,
      },
      expect.objectContaining({ key: "memory/read_graph:h1#0", replayed: true, durationMs: 1 }),
    ]);
    const keys: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? "" : `&cursor=${cursor}`;
      const page = (
        await api.call({ method: "GET", url: `/v1/jobs/${id}/steps?limit=2${query}` })
      ).json();
      keys.push(...page.steps.map((step: { key: string }) => step.key));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(keys).toEqual([0, 1, 2, 3, 4].map((seq) => `memory/read_graph:h${seq}#0`));
    const all = (await api.call({ method: "GET", url: `/v1/jobs/${id}/steps` })).json();
    expect(all.nextCursor).toBeNull();
    expect(all.steps[4]).toMatchObject({
      status: "failed",
      replayed: false,
      error: { message: "nope" },
    });
  });

  it("answers 404 for an unknown job and 400 for a bad cursor or limit", async () => {
    expect(
      (await api.call({ method: "GET", url: `/v1/jobs/${randomUUID()}/steps` })).statusCode,
    ).toBe(404);
    expect((await api.call({ method: "GET", url: "/v1/jobs/x/steps" })).statusCode).toBe(404);
    const { id } = (await submit({ code: "return 1" })).json();
    for (const query of ["cursor=nope", "limit=0", "limit=x"]) {
      const response = await api.call({ method: "GET", url: `/v1/jobs/${id}/steps?${query}` });
      expect(response.statusCode, query).toBe(400);
    }
  });
});

describe("POST /v1/jobs/:id/cancel", () => {
  it("cancels a queued job at once: row, queue entry and event", async () => {
    const { id } = (await submit({ code: "return 1" })).json();
    const subscriber = createRedis(api.config.REDIS_URL, "test-events");
    const hub = new JobEventHub(subscriber, api.config.TURTLE_QUEUE);
    try {
      await hub.waitFor("", 0, () => false); // resolves once subscribed
      const event = hub.waitFor(id, 30_000, (e) => e.status === "cancelled");
      const response = await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel` });
      expect(response.statusCode).toBe(202);
      expect(response.json()).toEqual({ id, status: "cancelled" });
      expect(await event).toEqual({
        jobId: id,
        projectId: DEFAULT_PROJECT_ID,
        status: "cancelled",
      });
    } finally {
      await hub.close();
    }
    const row = await api.db.job.findUniqueOrThrow({ where: { id } });
    expect(row.status).toBe("cancelled");
    expect(row.finishedAt).not.toBeNull();
    expect(row.error).toEqual({
      code: "cancelled",
      name: "CancelledError",
      message: "Cancelled before it started",
    });
    expect(await api.app.queue.getJob(queueEntryId(id, 0))).toBeUndefined();

    const again = await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel` });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe("not_cancellable");
  });

  it("asks the worker running a job to stop: cancelRequestedAt, and the id on the cancel channel", async () => {
    const { id } = (await submit({ code: "return 1" })).json();
    await api.db.job.update({ where: { id }, data: { status: "running", startedAt: new Date() } });
    const subscriber = createRedis(api.config.REDIS_URL, "test-cancel");
    const heard = new Promise<string>((resolve) => {
      subscriber.on("message", (_channel: string, message: string) => resolve(message));
    });
    await subscriber.subscribe(channels(api.config.TURTLE_QUEUE).cancel);
    try {
      const response = await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel` });
      expect(response.statusCode).toBe(202);
      expect(response.json()).toEqual({ id, status: "running" });
      expect(await heard).toBe(id);
    } finally {
      await subscriber.quit();
    }
    const row = await api.db.job.findUniqueOrThrow({ where: { id } });
    expect(row.status).toBe("running");
    expect(row.cancelRequestedAt).not.toBeNull();
  });

  it("answers 409 for finished jobs and 404 for unknown ones", async () => {
    const { id } = (await submit({ code: "return 1" })).json();
    await finish(id, "succeeded", { result: 1 });
    const response = await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel` });
    expect(response.statusCode).toBe(409);
    expect(response.json().error.message).toContain("is succeeded");
    for (const unknown of [randomUUID(), "nope"]) {
      expect(
        (await api.call({ method: "POST", url: `/v1/jobs/${unknown}/cancel` })).statusCode,
      ).toBe(404);
    }
  });
});

describe("POST /v1/jobs/:id/resume", () => {
  it("requeues a failed job as its next run, with new code, keeping its steps", async () => {
    const { id } = (await submit({ code: "throw new Error('x')" })).json();
    await api.db.step.create({
      data: {
        jobId: id,
        key: "memory/read_graph:h#0",
        seq: 0,
        server: "memory",
        tool: "read_graph",
        status: "succeeded",
        attempt: 1,
        startedAt: new Date(),
        finishedAt: new Date(),
      },
    });
    await finish(id, "failed", {
      error: { code: "runtime_error", name: "Error", message: "x", line: 1, column: 1 },
      result: { partial: true },
      resultTruncated: true,
      cancelRequestedAt: new Date(),
      deliveries: 2,
    });
    const response = await api.call({
      method: "POST",
      url: `/v1/jobs/${id}/resume`,
      payload: { code: "return 2" },
    });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ id, status: "queued" });
    const row = await api.db.job.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({
      status: "queued",
      run: 1,
      code: "return 2",
      result: null,
      resultTruncated: false,
      error: null,
      finishedAt: null,
      cancelRequestedAt: null,
      deliveries: 0,
    });
    expect(await api.db.step.count({ where: { jobId: id } })).toBe(1);
    const entry = await api.app.queue.getJob(queueEntryId(id, 1));
    expect(entry?.data).toEqual({ jobId: id, run: 1, projectId: DEFAULT_PROJECT_ID });

    const again = await api.call({ method: "POST", url: `/v1/jobs/${id}/resume` });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe("not_resumable");
  });

  it("resumes a cancelled job without a body, and waits with ?wait=", async () => {
    const { id } = (await submit({ code: "return 3" })).json();
    await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel` });
    const pending = api.call({ method: "POST", url: `/v1/jobs/${id}/resume?wait=30` });
    await eventually("the resumed run to be queued", async () =>
      (await api.app.queue.getJob(queueEntryId(id, 1))) ? true : undefined,
    );
    await eventually("the request to wait", () => waiting(api.app, id));
    await finish(id, "succeeded", { result: 3 });
    const response = await pending;
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id, status: "succeeded", result: 3 });
  });

  it("validates the new code like a submission", async () => {
    const { id } = (await submit({ code: "return 1" })).json();
    await finish(id, "failed");
    for (const [payload, message] of [
      [{ code: 5 }, "body.code must be a string"],
      [{ code: "" }, "body.code must NOT have fewer than 1 characters"],
      [{ code: " " }, "body.code is blank"],
      [{ code: "x".repeat(300_000) }, "over the limit of 262144"],
      [{ cod: "return 1" }, "body.cod is not a known field"],
    ] as const) {
      const response = await api.call({ method: "POST", url: `/v1/jobs/${id}/resume`, payload });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.message).toContain(message);
    }
    expect((await api.db.job.findUniqueOrThrow({ where: { id } })).status).toBe("failed");
  });

  it("answers 409 for queued, running or succeeded jobs and 404 for unknown ones", async () => {
    const { id } = (await submit({ code: "return 1" })).json();
    expect((await api.call({ method: "POST", url: `/v1/jobs/${id}/resume` })).statusCode).toBe(409);
    await finish(id, "succeeded");
    const response = await api.call({ method: "POST", url: `/v1/jobs/${id}/resume` });
    expect(response.statusCode).toBe(409);
    expect(response.json().error.message).toContain("only failed or cancelled jobs");
    expect(
      (await api.call({ method: "POST", url: `/v1/jobs/${randomUUID()}/resume` })).statusCode,
    ).toBe(404);
  });
});
