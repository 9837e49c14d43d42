// What a running fleet shows: GET /v1/jobs/:id/events (a job's life as server-sent events) and
// GET /metrics, over real HTTP while a real worker process runs jobs against a real MCP server.

import { CONTROL_SERVER, eventually, it, type TestApi, type TestFleet } from "@turtle/test-support";
import { describe, expect } from "vitest";

let fleet: TestFleet;
let api: TestApi;
let base: string;

it.override("fleetOptions", {
  servers: () => [{ name: "control", command: process.execPath, args: [CONTROL_SERVER] }],
  workerEnv: { WORKER_METRICS_MS: "200" },
});

it.beforeAll(async ({ fleet: started }) => {
  fleet = started;
  ({ api, base } = fleet);
});

interface Sse {
  event: string;
  data: Record<string, unknown>;
}

/** Reads the stream to its end: every event, in order. */
async function readEvents(response: Response): Promise<Sse[]> {
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "" && !block.startsWith(":"))
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((line) => line.startsWith("event: "))?.slice(7) ?? "message";
      const data = lines.find((line) => line.startsWith("data: "))?.slice(6) ?? "null";
      return { event, data: JSON.parse(data) };
    });
}

const open = (id: string, key = api.key) =>
  fetch(`${base}/v1/jobs/${id}/events`, { headers: { authorization: `Bearer ${key}` } });

describe("GET /v1/jobs/:id/events", () => {
  it("streams the job's state, its status changes, steps and logs, then ends", async () => {
    const submitted = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: {
        code: [
          // Time for the test to open the stream before the first step starts.
          "const until = Date.now() + 500;",
          "while (Date.now() < until) {}",
          "await control.sleep({ ms: 100 });",
          "console.log('slept');",
          "await control.echo({ n: 1 });",
          "try { await control.fail({ message: 'nope' }); } catch {}",
          "return 'done';",
        ].join("\n"),
      },
    });
    expect(submitted.statusCode).toBe(202);
    const { id } = submitted.json();
    const response = await open(id);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = await readEvents(response);

    expect(events[0]?.event).toBe("job");
    expect(events[0]?.data).toMatchObject({ id });
    expect(events.at(-1)?.event).toBe("end");
    const statuses = events.filter((e) => e.event === "status").map((e) => e.data.status);
    expect(statuses.at(-1)).toBe("succeeded");

    const steps = events
      .filter((e) => e.event === "step")
      .map((e) => `${e.data.tool}:${e.data.status}`);
    expect(steps).toEqual([
      "sleep:running",
      "sleep:succeeded",
      "echo:running",
      "echo:succeeded",
      "fail:running",
      "fail:failed",
    ]);
    const failed = events.find((e) => e.event === "step" && e.data.status === "failed");
    expect(failed?.data).toMatchObject({ server: "control", error: "nope", attempt: 1 });
    expect(failed?.data.durationMs).toBeGreaterThanOrEqual(0);
    const log = events.find((e) => e.event === "log");
    expect(log?.data).toMatchObject({ level: "log", message: "slept" });
    // The line logged after the first step comes between it and the second.
    const order = events.map((e) => (e.event === "log" ? "log" : `${e.data.tool ?? e.event}`));
    expect(order.indexOf("log")).toBeGreaterThan(order.indexOf("sleep"));
    expect(order.indexOf("log")).toBeLessThan(order.indexOf("echo"));
  });

  it("gives a watcher who arrives late what the run did before, then the rest, once each", async () => {
    const submitted = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: {
        code: "console.log('early');\nawait control.echo({ n: 1 });\nawait control.sleep({ ms: 1500 });\nconsole.log('late');\nreturn 1;",
      },
    });
    const { id } = submitted.json();
    await eventually("the first step to end", async () => {
      const steps = (await api.call({ method: "GET", url: `/v1/jobs/${id}/steps` })).json();
      return steps.steps.length >= 1 ? true : undefined;
    });
    const events = await readEvents(await open(id));
    const seen = events
      .filter((e) => e.event === "log" || e.event === "step")
      .map((e) =>
        e.event === "log" ? `log:${e.data.message}` : `${e.data.tool}:${e.data.status}`,
      );
    expect(seen).toEqual([
      "log:early",
      "echo:running",
      "echo:succeeded",
      "sleep:running",
      "sleep:succeeded",
      "log:late",
    ]);
  });

  it("answers a job that has ended with its state and the end at once", async () => {
    const done = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: { code: "return 7;" },
    });
    expect(done.json().status).toBe("succeeded");
    const events = await readEvents(await open(done.json().id));
    expect(events.map((e) => e.event)).toEqual(["job", "end"]);
    expect(events[0]?.data).toMatchObject({ status: "succeeded", result: 7 });
  });

  it("lets go of the job's channel when the client hangs up", async () => {
    const submitted = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "await control.sleep({ ms: 3000 });\nreturn 1;" },
    });
    const { id } = submitted.json();
    const channel = `${api.config.TURTLE_QUEUE}:job:${id}:activity`;
    const subscribers = async () =>
      Number(((await api.app.redis.pubsub("NUMSUB", channel)) as [string, number])[1]);
    const hangUp = new AbortController();
    const response = await fetch(`${base}/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${api.key}` },
      signal: hangUp.signal,
    });
    const reader = response.body?.getReader();
    await reader?.read(); // the stream is open: the `job` event came
    expect(await subscribers()).toBe(1);
    hangUp.abort();
    await eventually("the subscription to end", async () =>
      (await subscribers()) === 0 ? true : undefined,
    );
  });

  it("tells a resumed run's replays as it goes, before its new steps end", async () => {
    const steps = "for (let n = 0; n < 3; n++) await control.echo({ n });";
    const failed = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: { code: `${steps}\nthrow new Error('not yet');` },
    });
    expect(failed.json().status).toBe("failed");
    const { id } = failed.json();
    const resumed = await api.call({
      method: "POST",
      url: `/v1/jobs/${id}/resume`,
      payload: { code: `${steps}\nawait control.sleep({ ms: 300 });\nreturn 'done';` },
    });
    expect(resumed.statusCode).toBe(202);
    const events = await readEvents(await open(id));
    const replayed = events.findIndex((e) => e.event === "replayed");
    const sleepEnd = events.findIndex(
      (e) => e.event === "step" && e.data.tool === "sleep" && e.data.status === "succeeded",
    );
    expect(events[replayed]?.data).toEqual({ count: 3 });
    expect(replayed).toBeLessThan(sleepEnd);
    expect(events.at(-1)?.event).toBe("end");
  });

  it("answers 404 for an unknown job and 401 without the key", async () => {
    for (const id of ["00000000-0000-4000-8000-000000000000", "not-a-uuid"]) {
      const response = await open(id);
      expect(response.status).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
    }
    expect((await open("00000000-0000-4000-8000-000000000000", "wrong")).status).toBe(401);
  });
});

describe("GET /metrics", () => {
  it("adds up the fleet: jobs, queue, and each worker's steps, errors and batches", async () => {
    const ran = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: {
        code: "await control.echo({ n: 2 });\ntry { await control.fail({ message: 'x' }); } catch {}\nreturn 1;",
      },
    });
    expect(ran.json().status).toBe("succeeded");
    const scrape = async () => {
      const response = await fetch(`${base}/metrics`, {
        headers: { authorization: `Bearer ${api.key}` },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
      return response.text();
    };
    const value = (text: string, series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    /** The sum over the series starting so: worker series carry a `worker` label too. */
    const sum = (text: string, start: string) =>
      text
        .split("\n")
        .filter((l) => l.startsWith(start))
        .reduce((total, l) => total + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
    // Worker snapshots arrive every 200 ms here; wait for one taken after the job.
    const text = await eventually("the worker's figures for the job", async () => {
      const scraped = await scrape();
      // The job's own figures are recorded last, once its run has ended.
      const jobs = sum(scraped, 'turtle_job_duration_seconds_count{status="succeeded"');
      return jobs >= 1 ? scraped : undefined;
    });
    expect(value(text, 'turtle_jobs{project="default",status="succeeded"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(value(text, 'turtle_queue_depth{state="waiting"}')).toBe(0);
    expect(value(text, "turtle_workers")).toBe(1);
    expect(text).toMatch(
      /turtle_tool_errors_total\{server="control",tool="fail",worker="[^"]+"\} [1-9]/,
    );
    const echo =
      'turtle_step_duration_seconds_count{server="control",tool="echo",status="succeeded"';
    expect(sum(text, echo)).toBeGreaterThanOrEqual(1);
    expect(sum(text, 'turtle_steps_total{kind="executed"')).toBeGreaterThanOrEqual(2);
    expect(sum(text, "turtle_checkpoint_batch_size_count")).toBeGreaterThanOrEqual(1);
    expect(text).toContain("# HELP turtle_isolate_kills_total");
  });

  it("needs the API key", async () => {
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
  });
});

describe("GET /v1/events", () => {
  it("streams every job's status changes, queued to succeeded", async () => {
    const hangUp = new AbortController();
    const response = await fetch(`${base}/v1/events`, {
      headers: { authorization: `Bearer ${api.key}` },
      signal: hangUp.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = response.body?.getReader();
    if (reader === undefined) throw new Error("no body");
    await reader.read(); // the opening comment: listening
    const submitted = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: { code: "await control.echo({ n: 3 }); return 3;" },
    });
    const { id } = submitted.json();
    let text = "";
    const decoder = new TextDecoder();
    while (!text.includes(`"id":"${id}","status":"succeeded"`)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    hangUp.abort();
    const statuses = text
      .split("\n\n")
      .filter((block) => block.startsWith("event: job"))
      .map((block) => JSON.parse(block.split("data: ")[1] ?? "null"))
      .filter((event) => event.id === id)
      .map((event) => event.status);
    // Every change is told; "queued" (from the API) and "running" (from the worker) travel on
    // separate connections, so only the end is sure to come last.
    expect([...statuses].sort()).toEqual(["queued", "running", "succeeded"]);
    expect(statuses.at(-1)).toBe("succeeded");
  });
});

describe("GET /v1/workers and /v1/stats/throughput", () => {
  it("list the live workers, with what each runs, and how many jobs ended when", async () => {
    const submitted = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "await control.sleep({ ms: 1500 }); return 1;" },
    });
    const { id } = submitted.json();
    const worker = await eventually("the worker to show the job it runs", async () => {
      const response = await api.call({ method: "GET", url: "/v1/workers" });
      expect(response.statusCode).toBe(200);
      const [first] = response.json().workers;
      return first?.running.some((run: { jobId: string }) => run.jobId === id) ? first : undefined;
    });
    expect(worker).toMatchObject({ pid: fleet.worker.child.pid, concurrency: 4 });
    expect(Date.parse(worker.startedAt)).toBeLessThanOrEqual(Date.now());

    await api.call({ method: "GET", url: `/v1/jobs/${id}?wait=30` });
    const after = await eventually("the worker to count the job as finished", async () => {
      const [first] = (await api.call({ method: "GET", url: "/v1/workers" })).json().workers;
      return first?.running.length === 0 && (first.finished.succeeded ?? 0) >= 1
        ? first
        : undefined;
    });
    expect(after.finished.succeeded).toBeGreaterThanOrEqual(1);

    const throughput = await api.call({
      method: "GET",
      url: "/v1/stats/throughput?minutes=5&bucketSeconds=60",
    });
    expect(throughput.statusCode).toBe(200);
    const { bucketSeconds, buckets } = throughput.json();
    expect(bucketSeconds).toBe(60);
    expect(buckets).toHaveLength(5);
    const ended = await api.db.job.groupBy({
      by: ["status"],
      where: { finishedAt: { gte: new Date(buckets[0].at) } },
      _count: { _all: true },
    });
    const succeeded = ended.find((row) => row.status === "succeeded")?._count._all ?? 0;
    expect(buckets.reduce((sum: number, b: { succeeded: number }) => sum + b.succeeded, 0)).toBe(
      succeeded,
    );
    expect(succeeded).toBeGreaterThanOrEqual(1);

    const tooMany = await api.call({
      method: "GET",
      url: "/v1/stats/throughput?minutes=1440&bucketSeconds=1",
    });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json().error.message).toContain("widen bucketSeconds");
  });
});
