// The API's handle on core's JobStates (every job transition goes through it), and how what it
// refuses is answered.
import {
  ConcurrencyLimitError,
  EnqueueError,
  JobStates,
  SlotsUnavailableError,
} from "@turtle/core";
import type { FastifyInstance } from "fastify";
import { ApiError } from "../errors.ts";
import type { Auth } from "../plugins/auth.ts";
import { killAt } from "./lifecycle.ts";

const made = new WeakMap<FastifyInstance, JobStates>();

/** The app's JobStates, over its Postgres, queue, Redis and slots. */
export function jobStates(app: FastifyInstance): JobStates {
  let states = made.get(app);
  if (states === undefined) {
    states = new JobStates({
      db: app.db,
      redis: app.redis,
      queueName: app.config.TURTLE_QUEUE,
      queue: app.queue,
      activeJobs: app.activeJobs,
      warn: (fields, message) => app.log.warn(fields, message),
      at: (point) => killAt(app, point),
    });
    made.set(app, states);
  }
  return states;
}

/** Answers 503 for a job that was recorded but could not be queued (it is marked failed). */
export function enqueueFailed(jobId?: string): ApiError {
  const resume =
    jobId === undefined
      ? "submit it again once Redis is back (the same idempotencyKey returns it, to resume)"
      : `resume it (POST /v1/jobs/${jobId}/resume) once Redis is back`;
  return new ApiError(
    503,
    "enqueue_failed",
    `the job was recorded but could not be queued because Redis is unavailable, so it is marked failed: ${resume}`,
  );
}

/**
 * Runs a transition that takes a slot or queues a run, answering its refusals: 429 while the
 * project has its limit of jobs, 503 while Redis cannot count them or refused the entry.
 * `jobId` names an existing job (resumed or woken), for the 503's advice.
 */
export async function transition<T>(
  app: FastifyInstance,
  auth: Pick<Auth, "projectName"> | null,
  move: () => Promise<T>,
  jobId?: string,
): Promise<T> {
  try {
    return await move();
  } catch (error) {
    if (error instanceof ConcurrencyLimitError) {
      throw new ApiError(
        429,
        "concurrency_limit",
        `project "${auth?.projectName}" has ${error.limit} jobs queued or running, its limit (maxConcurrentJobs): retry after the Retry-After seconds, once some have ended`,
        { "retry-after": "1" },
      );
    }
    if (error instanceof SlotsUnavailableError) {
      app.log.error({ err: error.cause }, "could not count the project's active jobs");
      throw new ApiError(503, "queue_unavailable", "the queue (Redis) is unavailable: retry later");
    }
    if (error instanceof EnqueueError) {
      if (jobId !== undefined) app.log.error({ err: error, jobId }, "could not enqueue a job");
      throw enqueueFailed(jobId);
    }
    throw error;
  }
}
