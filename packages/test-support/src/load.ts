/**
 * The load generator: jobs submitted over HTTP by autocannon to a real API and worker process
 * (a platform of their own, stopped and dropped at the end), each job's input numbered; it
 * reports what came of every job (lost, repeated, wrong results) and the latencies. The load
 * test checks the counts; `npm run bench -- load` reports the figures. Importable without
 * vitest.
 */
import { createDb } from "@turtle/db";
import autocannon from "autocannon";
import { startProcessPlatform } from "./process-platform.ts";

export interface LoadResult {
  jobs: number;
  /** Submissions answered 202, and any other answers or connection errors. */
  accepted: number;
  refused: number;
  errors: number;
  submitP50Ms: number;
  submitP99Ms: number;
  submitsPerSecond: number;
  /** From the first submission to the last job's `succeeded` in Postgres. */
  endToEndJobsPerSecond: number;
  /** The same load on GET /healthz: the HTTP ceiling of this API process. */
  healthP50Ms: number;
  healthP99Ms: number;
  check: {
    rows: number;
    succeeded: number;
    distinctInputs: number;
    maxAttempts: number;
    wrongResults: number;
  };
}

function fire(options: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

export async function runLoad(jobs: number, connections = 50): Promise<LoadResult> {
  // The load generator is one project sending as fast as it can: its limits are lifted (the
  // limits themselves are tested in apps/api/test/tenants.test.ts).
  const platform = await startProcessPlatform(
    {},
    { PROJECT_REQUESTS_PER_MINUTE: "10000000", PROJECT_MAX_CONCURRENT_JOBS: "1000000" },
    "load",
  );
  const db = createDb(platform.databaseUrl, { max: 2 });
  try {
    const headers = {
      authorization: `Bearer ${platform.key}`,
      "content-type": "application/json",
    };
    const health = await fire({
      url: `${platform.base}/healthz`,
      connections,
      amount: Math.min(jobs, 10_000),
    });
    let next = 0;
    const started = Date.now();
    const load = await fire({
      url: platform.base,
      connections,
      amount: jobs,
      headers,
      requests: [
        {
          method: "POST",
          path: "/v1/jobs",
          setupRequest: (request) => ({
            ...request,
            body: JSON.stringify({ code: "return input.n;", input: { n: next++ } }),
          }),
        },
      ],
    });
    // Every accepted job, to its end.
    let ended = 0;
    const deadline = Date.now() + 10 * 60_000;
    while (Date.now() < deadline) {
      ended = await db.job.count({
        where: { status: { in: ["succeeded", "failed", "cancelled"] } },
      });
      if (ended >= load["2xx"]) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const last = await db.job.aggregate({ _max: { finishedAt: true } });
    const finishedAt = last._max.finishedAt?.getTime() ?? Date.now();
    const [check] = await db.$queryRaw<LoadResult["check"][]>`
      SELECT count(*)::int AS "rows",
             (count(*) FILTER (WHERE status = 'succeeded'))::int AS "succeeded",
             count(DISTINCT input->>'n')::int AS "distinctInputs",
             coalesce(max(attempts), 0)::int AS "maxAttempts",
             (count(*) FILTER (WHERE result::text IS DISTINCT FROM input->>'n'))::int AS "wrongResults"
      FROM "Job"`;
    return {
      jobs,
      accepted: load["2xx"],
      refused: load.non2xx,
      errors: load.errors,
      submitP50Ms: load.latency.p50,
      submitP99Ms: load.latency.p99,
      submitsPerSecond: load["2xx"] / load.duration,
      endToEndJobsPerSecond: load["2xx"] / ((finishedAt - started) / 1000),
      healthP50Ms: health.latency.p50,
      healthP99Ms: health.latency.p99,
      check: check ?? { rows: 0, succeeded: 0, distinctInputs: 0, maxAttempts: 0, wrongResults: 0 },
    };
  } finally {
    await db.$disconnect();
    await platform.stop();
  }
}
