import { ActiveJobs, createJobQueue, type JobQueue } from "@turtle/core";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

declare module "fastify" {
  interface FastifyInstance {
    queue: JobQueue;
    /** Each project's jobs queued or running, for its concurrency limit. */
    activeJobs: ActiveJobs;
    /** Entries waiting in the queue, read at most once per `depthCacheMs` for all requests. */
    queueDepth(): Promise<number>;
  }
}

export interface QueueOptions {
  name: string;
  depthCacheMs: number;
}

export default fp(
  async function queue(app: FastifyInstance, options: QueueOptions) {
    const jobs = createJobQueue(options.name, app.redis);
    let cached: { at: number; depth: Promise<number> } | undefined;
    app.decorate("queue", jobs);
    app.decorate("activeJobs", new ActiveJobs(app.redis, options.name));
    app.decorate("queueDepth", () => {
      const now = Date.now();
      if (cached === undefined || now - cached.at >= options.depthCacheMs) {
        // Every entry has a priority (see core's fairPriority): most wait in BullMQ's
        // prioritized set rather than its plain wait list.
        const depth = jobs.getJobCountByTypes("waiting", "prioritized");
        cached = { at: now, depth };
        // A failed read is not cached: the next request asks Redis again.
        depth.catch(() => {
          if (cached?.depth === depth) cached = undefined;
        });
      }
      return cached.depth;
    });
    app.addHook("onClose", async () => {
      await jobs.close();
    });
  },
  { name: "queue", dependencies: ["redis"] },
);
