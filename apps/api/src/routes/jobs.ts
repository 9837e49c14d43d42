// Submitting, listing and reading jobs.
import type { Prisma } from "@turtle/db";
import { ErrorResponseSchema } from "../errors.ts";
import { jobCursor, pageQueryProperties, parseJobCursor } from "../jobs/cursors.ts";
import { findJob } from "../jobs/find.ts";
import { killAt } from "../jobs/lifecycle.ts";
import { programProperties, submit } from "../jobs/submit.ts";
import { JOB_STATUSES, JobSchema, JobSummarySchema, jobSummary, jobView } from "../jobs/views.ts";
import { replyAfterWait, WaitQuerySchema } from "../jobs/wait.ts";
import { authOf, projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";
import { parseTime } from "../validation.ts";

const errors = { 400: ErrorResponseSchema, 404: ErrorResponseSchema } as const;

export default async function jobRoutes(app: TypedInstance) {
  const { config } = app;

  const submitBody = {
    type: "object",
    required: ["code"],
    additionalProperties: false,
    properties: {
      ...programProperties(config),
      input: { description: "any JSON value; the program reads it as the global `input`" },
      timeoutMs: {
        type: "integer",
        minimum: 1,
        maximum: config.JOB_MAX_TIMEOUT_MS,
        description: `the job's wall-clock limit in milliseconds: an integer from 1 to ${config.JOB_MAX_TIMEOUT_MS} (default ${config.JOB_TIMEOUT_MS})`,
      },
      memoryMb: {
        type: "integer",
        minimum: 8,
        maximum: config.JOB_MAX_MEMORY_MB,
        description: `the isolate's memory limit in MB: an integer from 8 to ${config.JOB_MAX_MEMORY_MB} (default ${config.JOB_MEMORY_MB})`,
      },
      idempotencyKey: {
        type: "string",
        minLength: 1,
        maxLength: 200,
        description:
          "1 to 200 characters; submitting the same key again returns the first job instead of a new one",
      },
      typecheck: {
        type: "boolean",
        description:
          "type-check the program against its servers' declarations first; type errors answer 400 `type_errors` with error.diagnostics, and no job is made (default false)",
      },
    },
  } as const;

  app.post(
    "/jobs",
    {
      schema: {
        operationId: "submitJob",
        summary: "Submit a program as a job",
        body: submitBody,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { wait: WaitQuerySchema },
        },
        response: {
          200: JobSchema,
          202: JobSchema,
          ...errors,
          403: ErrorResponseSchema,
          429: ErrorResponseSchema,
          503: ErrorResponseSchema,
        },
      },
    },
    async (request, reply) => {
      const { wait } = request.query;
      const { id, status, created } = await submit(app, authOf(request), request.body);
      killAt(app, "before-answer");
      // The request's own log lines from here on (its "request completed" too) name the job.
      request.log = reply.log = request.log.child({ jobId: id });
      if (wait === undefined) return reply.code(created ? 202 : 200).send({ id, status });
      const waited = await replyAfterWait(app, reply, id, wait);
      return reply.code(waited.status).send(jobView(waited.job));
    },
  );

  app.get(
    "/jobs",
    {
      schema: {
        operationId: "listJobs",
        summary: "List jobs, newest first",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            status: { type: "string", enum: JOB_STATUSES, description: "only jobs in this status" },
            server: {
              type: "string",
              minLength: 1,
              maxLength: 200,
              description: "only jobs that name this server or called one of its tools",
            },
            since: {
              type: "string",
              maxLength: 40,
              description: "only jobs created at or after this time (ISO 8601)",
            },
            until: {
              type: "string",
              maxLength: 40,
              description: "only jobs created before this time (ISO 8601)",
            },
            ...pageQueryProperties("jobs", 100, 20),
          },
        },
        response: {
          200: {
            type: "object",
            required: ["jobs", "nextCursor"],
            properties: {
              jobs: { type: "array", items: JobSummarySchema },
              nextCursor: { type: ["string", "null"] },
            },
          },
          400: ErrorResponseSchema,
        },
      },
    },
    async (request) => {
      const { status, server, since, until, limit, cursor } = request.query;
      const after = cursor === undefined ? undefined : parseJobCursor(cursor);
      const conditions: Prisma.JobWhereInput[] = [{ projectId: projectOf(request) }];
      if (status !== undefined) conditions.push({ status });
      if (server !== undefined) {
        conditions.push({ OR: [{ servers: { has: server } }, { steps: { some: { server } } }] });
      }
      if (since !== undefined) conditions.push({ createdAt: { gte: parseTime(since, "since") } });
      if (until !== undefined) conditions.push({ createdAt: { lt: parseTime(until, "until") } });
      if (after !== undefined) {
        conditions.push({
          OR: [
            { createdAt: { lt: after.createdAt } },
            { createdAt: after.createdAt, id: { lt: after.id } },
          ],
        });
      }
      const where: Prisma.JobWhereInput = { AND: conditions };
      const rows = await app.db.job.findMany({
        where,
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        jobs: page.map(jobSummary),
        nextCursor: rows.length > limit && last !== undefined ? jobCursor(last) : null,
      };
    },
  );

  app.get(
    "/jobs/:id",
    {
      schema: {
        operationId: "getJob",
        summary: "Read a job: status, result, error, logs, stats",
        params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { wait: WaitQuerySchema },
        },
        response: { 200: JobSchema, 202: JobSchema, ...errors },
      },
    },
    async (request, reply) => {
      const job = await findJob(app, projectOf(request), request.params.id);
      const { wait } = request.query;
      if (wait === undefined) return jobView(job);
      const waited = await replyAfterWait(app, reply, job.id, wait);
      return reply.code(waited.status).send(jobView(waited.job));
    },
  );

  app.get(
    "/jobs/:id/program",
    {
      schema: {
        operationId: "getJobProgram",
        summary:
          "Read what a job runs: its code, input and servers (to show it, or submit it again)",
        params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
        response: {
          200: {
            type: "object",
            required: ["id", "code", "input", "servers", "timeoutMs", "memoryMb"],
            properties: {
              id: { type: "string" },
              code: { type: "string" },
              input: { description: "the job's input (JSON), null when it had none" },
              servers: { type: "array", items: { type: "string" } },
              timeoutMs: { type: "integer" },
              memoryMb: { type: "integer" },
            },
          },
          ...errors,
        },
      },
    },
    async (request) => {
      const job = await findJob(app, projectOf(request), request.params.id);
      return {
        id: job.id,
        code: job.code,
        input: job.input,
        servers: job.servers,
        timeoutMs: job.timeoutMs,
        memoryMb: job.memoryMb,
      };
    },
  );
}
