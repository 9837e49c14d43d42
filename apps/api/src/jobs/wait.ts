// Waiting for a job to end (`?wait=` on REST, and the MCP tools).
import type { Job } from "@turtle/db";
import type { FastifyInstance, FastifyReply } from "fastify";
import { ApiError } from "../errors.ts";
import { TERMINAL_STATUSES } from "./views.ts";

/**
 * Waits until the job ends, `seconds` pass, `signal` aborts or the app closes; then reads it. The
 * waiter is registered before the job is first read, so an end that happens between the read and
 * the wait is not missed.
 */
export async function waitForJob(
  app: FastifyInstance,
  jobId: string,
  seconds: number,
  signal?: AbortSignal,
): Promise<Job | null> {
  const done = new AbortController();
  try {
    const stop = AbortSignal.any([done.signal, app.closing, ...(signal ? [signal] : [])]);
    // waitFor would not notice a signal that is already aborted.
    const ended = stop.aborted
      ? Promise.resolve(null)
      : app.jobEvents.waitFor(
          jobId,
          Math.round(seconds * 1000),
          (event) => TERMINAL_STATUSES.has(event.status),
          stop,
        );
    const job = await app.db.job.findUnique({ where: { id: jobId } });
    if (job === null || TERMINAL_STATUSES.has(job.status)) return job;
    await ended;
    return await app.db.job.findUnique({ where: { id: jobId } });
  } finally {
    // Drops the waiter when the job had already ended at the first read.
    done.abort();
  }
}

/** waitForJob for an HTTP request: a client that hangs up stops the wait. */
export async function waitForEnd(
  app: FastifyInstance,
  reply: FastifyReply,
  jobId: string,
  seconds: number,
): Promise<Job | null> {
  const hungUp = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) hungUp.abort();
  };
  reply.raw.once("close", onClose);
  if (reply.request.raw.socket?.destroyed) hungUp.abort();
  try {
    return await waitForJob(app, jobId, seconds, hungUp.signal);
  } finally {
    reply.raw.off("close", onClose);
  }
}

/** Answers a `?wait=`: 200 with the job when it ended, 202 with it while it still runs. */
export async function replyAfterWait(
  app: FastifyInstance,
  reply: FastifyReply,
  jobId: string,
  seconds: number,
): Promise<{ job: Job; status: 200 | 202 }> {
  const job = await waitForEnd(app, reply, jobId, seconds);
  if (job === null) throw new ApiError(404, "not_found", `no job ${jobId}`);
  return { job, status: TERMINAL_STATUSES.has(job.status) ? 200 : 202 };
}

/** `?wait=` in seconds: more than 0, at most 60. */
export const WaitQuerySchema = {
  type: "number",
  exclusiveMinimum: 0,
  maximum: 60,
  description:
    "seconds to wait for the job to end before answering: a number above 0 and at most 60",
} as const;
