// Finding a job by the id a request names.
import { isUuid } from "@turtle/core";
import type { Job } from "@turtle/db";
import type { FastifyInstance } from "fastify";
import { ApiError } from "../errors.ts";

/**
 * A job of the project by id, or 404 — also for another project's jobs, and for ids that are not
 * UUIDs, which no job can have.
 */
export async function findJob(app: FastifyInstance, projectId: string, id: string): Promise<Job> {
  const job = isUuid(id) ? await app.db.job.findFirst({ where: { id, projectId } }) : null;
  if (job === null) throw new ApiError(404, "not_found", `no job ${JSON.stringify(id)}`);
  return job;
}
