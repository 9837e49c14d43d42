import { createRedis, JobEventHub } from "@turtle/core";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

declare module "fastify" {
  interface FastifyInstance {
    /** Job status events from every worker, for `?wait=`. */
    jobEvents: JobEventHub;
    /** Aborts when the app starts closing, so long waits answer at once instead of holding it. */
    closing: AbortSignal;
  }
}

export default fp(
  async function jobEvents(app: FastifyInstance, options: { redisUrl: string; queue: string }) {
    const subscriber = createRedis(options.redisUrl, "turtle-api-job-events");
    subscriber.on("error", (error) => app.log.debug({ err: error }, "redis subscriber error"));
    const hub = new JobEventHub(subscriber, options.queue);
    // waitFor registers its waiter only once the subscription is confirmed. Waiting for that here
    // means every later waitFor registers within the same tick, before the caller's next read of
    // the job, so no event can fall between that read and the subscription.
    await hub.waitFor("", 0, () => false);
    const closing = new AbortController();
    app.decorate("jobEvents", hub);
    app.decorate("closing", closing.signal);
    app.addHook("preClose", async () => closing.abort());
    // A connection whose request outlived the start of close would otherwise stay open (idle,
    // keep-alive) and hold the close for fastify's whole keepAliveTimeout.
    app.addHook("onSend", async (_request, reply) => {
      if (closing.signal.aborted) reply.header("connection", "close");
    });
    app.addHook("onClose", async () => {
      await hub.close();
    });
  },
  { name: "job-events" },
);
