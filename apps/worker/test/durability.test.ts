// Each test gets a platform of its own (database, queue, the control server, workers, and the
// real API for resuming and cancelling) from the `platform` fixture.
import { eventually, isAlive, test as it } from "@turtle/test-support";
import { describe, expect } from "vitest";

/** Ten calls in flight at a time over `n` items, each call echoing its item. */
const fanOut = (n: number, failAt = -1) => `
const results: number[] = [];
for (let start = 0; start < ${n}; start += 10) {
  const chunk = Array.from({ length: Math.min(10, ${n} - start) }, (_, k) => start + k);
  const echoed = await Promise.all(chunk.map((item) => control.echo({ item })));
  for (const e of echoed) {
    if (e.item === ${failAt}) throw new Error("cannot handle item " + e.item);
    results.push(e.item);
  }
}
return { count: results.length, sum: results.reduce((a, b) => a + b, 0) };`;

describe("durable steps", () => {
  it("resumes a failed job with edited code, replaying every completed step", async ({
    platform,
  }) => {
    await platform.startWorker();
    const job = await platform.submit({ code: fanOut(100, 57) });
    const failed = await platform.waitFor(job.id, ["failed", "succeeded"]);
    expect(failed.error).toMatchObject({ code: "runtime_error", message: "cannot handle item 57" });
    const before = await platform.executions();
    expect(before).toHaveLength(60);

    // The agent fixes its program: a new line, another variable name, same calls.
    const fixed = `// fixed: no longer throws\n${fanOut(100)}`;
    const resumed = await platform.call({
      method: "POST",
      url: `/v1/jobs/${job.id}/resume`,
      payload: { code: fixed },
    });
    expect(resumed.statusCode).toBe(202);
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({ status: "succeeded", result: { count: 100, sum: 4950 } });
    expect(done.replayedSteps).toBe(60);
    expect(done.executedSteps).toBe(100);
    const after = await platform.executions();
    expect(after).toHaveLength(100);
    expect(new Set(after.map((e) => e.idempotencyKey)).size).toBe(100);
    const replayed = await platform.db.step.count({ where: { jobId: job.id, replays: 1 } });
    expect(replayed).toBe(60);
  });

  it("cancels a running job promptly, its isolate disposed and tool call aborted", async ({
    platform,
  }) => {
    await platform.startWorker();
    const job = await platform.submit({
      code: "await control.echo({ a: 1 });\nawait control.sleep({ ms: 60000 });\nreturn 1;",
    });
    await platform.waitFor(job.id, ["running"]);
    // Wait for the sleep to have started on the server, then cancel through the API.
    await eventually("the sleep to start on the server", async () =>
      (await platform.executions()).some((e) => e.tool === "sleep") ? true : undefined,
    );
    const cancel = await platform.call({ method: "POST", url: `/v1/jobs/${job.id}/cancel` });
    expect(cancel.statusCode).toBe(202);
    const done = await platform.waitFor(job.id, ["cancelled", "failed", "succeeded"], 10_000);
    expect(done.status).toBe("cancelled");
    expect(done.error).toMatchObject({ code: "cancelled" });
  });
});

describe("crashes", () => {
  it("finishes a 500-call fan-out by replay after its worker is killed with SIGKILL", async ({
    platform,
  }) => {
    const first = await platform.startWorker();
    const job = await platform.submit({ code: fanOut(500) });
    // Kill once a good part of the fan-out is checkpointed.
    for (let i = 0; i < 2000; i++) {
      if ((await platform.db.step.count({ where: { jobId: job.id } })) >= 150) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    first.kill("SIGKILL");
    await first.exited;
    const durableAtKill = await platform.db.step.count({
      where: { jobId: job.id, status: "succeeded" },
    });
    expect(durableAtKill).toBeGreaterThanOrEqual(150);
    expect(durableAtKill).toBeLessThan(500);
    // The killed worker's MCP server exits once its stdin closes; after that, the count file
    // holds every call the killed worker started.
    const pids = new Set((await platform.executions()).map((e) => e.pid));
    for (let i = 0; i < 500 && [...pids].some(isAlive); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const startedBeforeKill = new Set((await platform.executions()).map((e) => e.idempotencyKey))
      .size;

    await platform.startWorker();
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({
      status: "succeeded",
      result: { count: 500, sum: 124_750 },
      attempts: 2,
    });

    const executions = (await platform.executions()).filter((e) => e.tool === "echo");
    const byKey = new Map<string, number>();
    for (const e of executions)
      byKey.set(e.idempotencyKey ?? "", (byKey.get(e.idempotencyKey ?? "") ?? 0) + 1);
    expect(byKey.size).toBe(500);
    // No checkpointed step ran again: the replayed ones ran exactly once.
    const checkpointed = await platform.db.step.findMany({ where: { jobId: job.id, replays: 1 } });
    expect(checkpointed.length).toBeGreaterThanOrEqual(durableAtKill);
    expect(done.replayedSteps).toBe(checkpointed.length);
    for (const step of checkpointed) expect(byKey.get(`${job.id}:${step.key}`)).toBe(1);
    // What ran twice is what the killed worker had started but not yet checkpointed (calls in
    // flight, and results not yet group-committed), each retried with the same idempotency key.
    const repeated = [...byKey.values()].filter((count) => count > 1);
    expect(repeated.every((count) => count === 2)).toBe(true);
    expect(executions.length - 500).toBe(repeated.length);
    expect(repeated.length).toBeLessThanOrEqual(startedBeforeKill - durableAtKill);
  });

  it("fails a job that keeps killing its workers, after a bounded number of deliveries", async ({
    platform,
  }) => {
    const poisonEnv = { WORKER_MAX_DELIVERIES: "2" };
    const poison = await platform.submit({ code: "await control.sleep({ ms: 60000 });" });
    for (let delivery = 1; delivery <= 2; delivery++) {
      const worker = await platform.startWorker(poisonEnv);
      await platform.waitFor(poison.id, ["running"]);
      for (let i = 0; i < 400; i++) {
        const job = await platform.db.job.findUniqueOrThrow({ where: { id: poison.id } });
        if (job.deliveries === delivery) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      worker.kill("SIGKILL");
      await worker.exited;
      await platform.db.job.findUniqueOrThrow({ where: { id: poison.id } });
    }
    // The fleet still serves other jobs while the poison job is redelivered and given up on.
    await platform.startWorker(poisonEnv);
    const healthy = await platform.submit({ code: "return 'fine'" });
    expect((await platform.waitFor(healthy.id, ["succeeded", "failed"])).result).toBe("fine");
    const done = await platform.waitFor(poison.id, ["failed", "succeeded"]);
    expect(done.error).toMatchObject({ code: "worker_lost" });
    expect((done.error as { message: string }).message).toContain(
      "each time the worker running it died",
    );
  });
});

describe("scaling and shutdown", () => {
  it("shares 300 jobs between three workers, each job succeeding exactly once", async ({
    platform,
  }) => {
    // Locks of 5 s, not the suite's 1 s: three workers starting at once on a busy machine can
    // stall an event loop past a second, and a run whose lock lapses gives its job up (it is
    // then run again elsewhere: a second attempt, which this test counts as a fault).
    const workers = await Promise.all(
      [0, 1, 2].map(() =>
        platform.startWorker({ WORKER_LOCK_MS: "5000", WORKER_CONCURRENCY: "8" }),
      ),
    );
    const jobs = await Promise.all(
      Array.from({ length: 300 }, (_, n) =>
        platform.submit({ code: "return (await control.echo({ n: input.n })).n;", input: { n } }),
      ),
    );
    for (const job of jobs) await platform.waitFor(job.id, ["succeeded", "failed"]);
    const rows = await platform.db.job.findMany();
    expect(rows).toHaveLength(300);
    expect(rows.every((row) => row.status === "succeeded" && row.attempts === 1)).toBe(true);
    expect(new Set(rows.map((row) => row.result))).toEqual(
      new Set(Array.from({ length: 300 }, (_, n) => n)),
    );
    const executions = (await platform.executions()).filter((e) => e.tool === "echo");
    expect(executions).toHaveLength(300);
    // Every worker took part.
    const pids = new Set(executions.map((e) => e.pid));
    expect(pids.size).toBeGreaterThanOrEqual(2);
    expect(workers).toHaveLength(3);
  });

  it("on SIGTERM lets short jobs finish and hands long ones back to another worker", async ({
    platform,
  }) => {
    const sigtermEnv = { WORKER_SHUTDOWN_GRACE_MS: "500" };
    const first = await platform.startWorker(sigtermEnv);
    const long = await platform.submit({
      code: "await control.echo({ step: 1 });\nawait control.sleep({ ms: 3000 });\nreturn 'long';",
    });
    await platform.waitFor(long.id, ["running"]);
    await eventually("the sleep to start on the server", async () =>
      (await platform.executions()).some((e) => e.tool === "sleep") ? true : undefined,
    );
    first.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('"msg":"worker stopped"');
    const handedBack = await platform.db.job.findUniqueOrThrow({ where: { id: long.id } });
    expect(handedBack.status).toBe("queued");

    await platform.startWorker(sigtermEnv);
    const done = await platform.waitFor(long.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({ status: "succeeded", result: "long", replayedSteps: 1 });
    const echoes = (await platform.executions()).filter((e) => e.tool === "echo");
    expect(echoes).toHaveLength(1);
  });
});
