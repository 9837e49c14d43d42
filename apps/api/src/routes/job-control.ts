// Cancelling and resuming jobs. Every transition is a conditional update, so two requests (or a
// request and a worker) racing on one job cannot both win.
import { channels, queueEntryId } from "@turtle/core";
import { type Job, Prisma } from "@turtle/db";
import type { FastifyReply } from "fastify";
import { conflict, ErrorResponseSchema } from "../errors.ts";
import {
  announce,
  checkCode,
  checkQueueDepth,
  enqueue,
  findJob,
  freeSlot,
  replyAfterWait,
  takeSlot,
  WaitQuerySchema,
} from "../jobs/lifecycle.ts";
import { JobSchema, jobView } from "../jobs/views.ts";
import { authOf, projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

/** What cancel and resume share: the job's id, `?wait=`, and the answers. */
const controlSchema = {
  params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
  querystring: {
    type: "object",
    additionalProperties: false,
    properties: { wait: WaitQuerySchema },
  },
  response: {
    200: JobSchema,
    202: JobSchema,
    400: ErrorResponseSchema,
    404: ErrorResponseSchema,
    409: ErrorResponseSchema,
    429: ErrorResponseSchema,
    503: ErrorResponseSchema,
  },
} as const;

export default async function jobControlRoutes(app: TypedInstance) {
  async function answer(reply: FastifyReply, job: Pick<Job, "id" | "status">, wait?: number) {
    if (wait === undefined) return reply.code(202).send({ id: job.id, status: job.status });
    const waited = await replyAfterWait(app, reply, job.id, wait);
    return reply.code(waited.status).send(jobView(waited.job));
  }

  app.post(
    "/jobs/:id/cancel",
    {
      schema: {
        operationId: "cancelJob",
        summary: "Cancel a queued, waiting or running job",
        ...controlSchema,
      },
    },
    async (request, reply) => {
      const projectId = projectOf(request);
      let job = await findJob(app, projectId, request.params.id);
      if (job.status === "queued" || job.status === "waiting") {
        const now = new Date();
        const cancelled = await app.db.job.updateMany({
          where: { id: job.id, status: job.status },
          data: {
            status: "cancelled",
            finishedAt: now,
            cancelRequestedAt: now,
            error: {
              code: "cancelled",
              name: "CancelledError",
              message: "Cancelled before it started",
            },
          },
        });
        if (cancelled.count === 1) {
          // A worker that took the entry already finds the row cancelled and skips it.
          await app.queue.remove(queueEntryId(job.id, job.run)).catch((error: unknown) => {
            request.log.warn({ err: error, jobId: job.id }, "could not remove a queue entry");
          });
          void freeSlot(app, projectId, job.id);
          await announce(app, job, "cancelled");
          return answer(reply, { id: job.id, status: "cancelled" }, request.query.wait);
        }
        // A worker started it meanwhile.
        job = await findJob(app, projectId, job.id);
      }
      if (job.status === "running") {
        const requested = await app.db.job.updateMany({
          where: { id: job.id, status: "running" },
          data: { cancelRequestedAt: new Date() },
        });
        if (requested.count === 1) {
          // The worker running it disposes its isolate and records `cancelled`.
          await app.redis.publish(channels(app.config.TURTLE_QUEUE).cancel, job.id);
          return answer(reply, { id: job.id, status: "running" }, request.query.wait);
        }
        job = await findJob(app, projectId, job.id);
      }
      throw conflict(
        "not_cancellable",
        `job ${job.id} is ${job.status}: only queued, waiting or running jobs can be cancelled`,
      );
    },
  );

  app.post(
    "/jobs/:id/resume",
    {
      schema: {
        operationId: "resumeJob",
        summary: "Run a failed or cancelled job again, replaying its completed steps",
        ...controlSchema,
        body: {
          type: ["object", "null"],
          additionalProperties: false,
          properties: {
            code: {
              type: "string",
              minLength: 1,
              description: `a corrected program to run instead (at most ${app.config.MAX_CODE_BYTES} bytes); steps it shares with the old one are replayed`,
            },
          },
        },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      const job = await findJob(app, auth.projectId, request.params.id);
      const code = request.body?.code;
      if (code !== undefined) checkCode(app, code);
      if (job.status !== "failed" && job.status !== "cancelled") {
        throw conflict(
          "not_resumable",
          `job ${job.id} is ${job.status}: only failed or cancelled jobs can be resumed`,
        );
      }
      await checkQueueDepth(app);
      const place = await takeSlot(app, auth, job.id);
      const resumed = await app.db.job.updateMany({
        where: { id: job.id, status: job.status, run: job.run },
        data: {
          status: "queued",
          run: { increment: 1 },
          ...(code === undefined ? {} : { code }),
          result: Prisma.DbNull,
          resultTruncated: false,
          error: Prisma.DbNull,
          finishedAt: null,
          cancelRequestedAt: null,
          deliveries: 0,
        },
      });
      if (resumed.count === 0) {
        void freeSlot(app, auth.projectId, job.id);
        throw conflict(
          "not_resumable",
          `job ${job.id} was resumed or changed meanwhile: read it again`,
        );
      }
      await announce(app, job, "queued");
      await enqueue(app, { ...job, run: job.run + 1 }, place);
      return answer(reply, { id: job.id, status: "queued" }, request.query.wait);
    },
  );
}
