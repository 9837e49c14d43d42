// The fleet as the dashboard's workers page shows it: the workers alive now (what each runs),
// and how many jobs ended per interval, over time — whether adding workers helped. The workers
// serve every project: each one's load is shown whole, but a project sees which jobs run only
// of its own (the operator sees them all).
import { readWorkers } from "@turtle/core";
import { badRequest, ErrorResponseSchema } from "../errors.ts";
import { authOf, projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

const WorkerSchema = {
  type: "object",
  required: ["id", "host", "pid", "concurrency", "startedAt", "busy", "running", "finished"],
  properties: {
    id: { type: "string" },
    host: { type: "string" },
    pid: { type: "integer" },
    concurrency: { type: "integer", description: "jobs it runs at once, at most" },
    startedAt: { type: "string" },
    busy: { type: "integer", description: "jobs it runs now, of every project" },
    running: {
      type: "array",
      description: "the jobs of this project it runs now (of every project, for the operator)",
      items: {
        type: "object",
        required: ["jobId", "since"],
        properties: { jobId: { type: "string" }, since: { type: "string" } },
      },
    },
    finished: {
      type: "object",
      description: "runs it finished since it started, by status",
      additionalProperties: { type: "integer" },
    },
  },
} as const;

const ENDED = ["succeeded", "failed", "cancelled"] as const;
const MAX_BUCKETS = 2000;

export default async function workerRoutes(app: TypedInstance) {
  const queue = app.config.TURTLE_QUEUE;

  app.get(
    "/workers",
    {
      schema: {
        operationId: "listWorkers",
        summary: "The workers alive now: concurrency and the jobs each runs",
        description: `Each worker refreshes its entry every WORKER_METRICS_MS (${app.config.WORKER_METRICS_MS} ms); one that stops is gone within three of those.`,
        response: {
          200: {
            type: "object",
            required: ["workers"],
            properties: { workers: { type: "array", items: WorkerSchema } },
          },
        },
      },
    },
    async (request) => {
      const auth = authOf(request);
      const workers = await readWorkers(app.redis, queue);
      const ids = workers.flatMap((worker) => worker.running.map((run) => run.jobId));
      const own =
        auth.operator || ids.length === 0
          ? null
          : new Set(
              (
                await app.db.job.findMany({
                  where: { id: { in: ids }, projectId: auth.projectId },
                  select: { id: true },
                })
              ).map((row) => row.id),
            );
      return {
        workers: workers.map((worker) => ({
          ...worker,
          busy: worker.running.length,
          running: own === null ? worker.running : worker.running.filter((r) => own.has(r.jobId)),
        })),
      };
    },
  );

  app.get(
    "/stats/throughput",
    {
      schema: {
        operationId: "getThroughput",
        summary: "The project's jobs ended per interval, by status, over the last minutes",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            minutes: {
              type: "integer",
              minimum: 1,
              maximum: 1440,
              default: 15,
              description: "how far back: 1 to 1440 (default 15)",
            },
            bucketSeconds: {
              type: "integer",
              minimum: 1,
              maximum: 3600,
              default: 10,
              description: "the width of each interval in seconds: 1 to 3600 (default 10)",
            },
          },
        },
        response: {
          200: {
            type: "object",
            required: ["bucketSeconds", "buckets"],
            properties: {
              bucketSeconds: { type: "integer" },
              buckets: {
                type: "array",
                description: "every interval from the oldest to now, empty ones included",
                items: {
                  type: "object",
                  required: ["at", ...ENDED],
                  properties: {
                    at: { type: "string", description: "the interval's start" },
                    succeeded: { type: "integer" },
                    failed: { type: "integer" },
                    cancelled: { type: "integer" },
                  },
                },
              },
            },
          },
          400: ErrorResponseSchema,
        },
      },
    },
    async (request) => {
      const { minutes, bucketSeconds } = request.query;
      const count = Math.ceil((minutes * 60) / bucketSeconds);
      if (count > MAX_BUCKETS) {
        throw badRequest(
          "invalid_request",
          `minutes and bucketSeconds make ${count} intervals, over ${MAX_BUCKETS}: widen bucketSeconds or shorten minutes`,
        );
      }
      const width = bucketSeconds * 1000;
      const last = Math.floor(Date.now() / width) * width;
      const first = last - (count - 1) * width;
      const rows = await app.db.$queryRaw<Array<{ at: bigint; status: string; n: number }>>`
        SELECT (floor(extract(epoch FROM "finishedAt") * 1000 / ${width}) * ${width})::bigint AS at,
               status::text AS status, count(*)::int AS n
        FROM "Job"
        WHERE "projectId" = ${projectOf(request)}::uuid AND "finishedAt" >= ${new Date(first)}
        GROUP BY 1, 2`;
      const buckets = Array.from({ length: count }, (_, i) => ({
        at: new Date(first + i * width).toISOString(),
        succeeded: 0,
        failed: 0,
        cancelled: 0,
      }));
      for (const row of rows) {
        const bucket = buckets[Math.round((Number(row.at) - first) / width)];
        if (bucket !== undefined && (ENDED as readonly string[]).includes(row.status)) {
          bucket[row.status as (typeof ENDED)[number]] += row.n;
        }
      }
      return { bucketSeconds, buckets };
    },
  );
}
