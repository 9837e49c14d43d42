// Cancelling and resuming jobs. Core's JobStates makes each move, as a conditional update, so
// two requests (or a request and a worker) racing on one job cannot both win.
import type { Job } from "@turtle/db";
import type { FastifyReply } from "fastify";
import { conflict, ErrorResponseSchema } from "../errors.ts";
import { findJob } from "../jobs/find.ts";
import { jobStates, transition } from "../jobs/states.ts";
import { checkCode, checkQueueDepth } from "../jobs/submit.ts";
import { JobSchema, jobView } from "../jobs/views.ts";
import { replyAfterWait, WaitQuerySchema } from "../jobs/wait.ts";
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
      const job = await findJob(app, projectOf(request), request.params.id);
      const stopped = await jobStates(app).stop(job);
      if (stopped.outcome === "cancelled") {
        return answer(reply, { id: job.id, status: "cancelled" }, request.query.wait);
      }
      if (stopped.outcome === "requested") {
        // The worker running it disposes its isolate and records `cancelled`.
        return answer(reply, { id: job.id, status: "running" }, request.query.wait);
      }
      throw conflict(
        "not_cancellable",
        `job ${job.id} is ${stopped.status}: only queued, waiting or running jobs can be cancelled`,
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
      const resumed = await transition(
        app,
        auth,
        () =>
          jobStates(app).resume(job, {
            limit: auth.maxConcurrentJobs,
            ...(code === undefined ? {} : { code }),
          }),
        job.id,
      );
      if (!resumed) {
        throw conflict(
          "not_resumable",
          `job ${job.id} was resumed or changed meanwhile: read it again`,
        );
      }
      return answer(reply, { id: job.id, status: "queued" }, request.query.wait);
    },
  );
}
