// Every REQUEUE_AFTER_MS one API instance (whichever takes a short Redis lock) sweeps for jobs
// that Postgres holds as queued, or running past their deadline, but Redis has no entry for —
// an API killed between recording a job and queueing it, a resume or approval cut the same way,
// a Redis that came back empty — and queues them again (see core's requeueLost).
import { requeueLost } from "@turtle/core";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

declare module "fastify" {
  interface FastifyInstance {
    /** Runs one sweep now (if no other instance holds the lock); returns the runs it queued. */
    requeueLost(): Promise<number>;
  }
}

/** Held for one period by the instance that sweeps: several APIs do not repeat each other. */
export function requeueLockKey(queue: string): string {
  return `${queue}:requeue-lock`;
}

export default fp(
  async function requeue(app: FastifyInstance) {
    const { REQUEUE_AFTER_MS, WORKER_LOCK_MS, TURTLE_QUEUE } = app.config;
    let sweeping: Promise<number> | undefined;

    const sweep = async (): Promise<number> => {
      const taken = await app.redis.set(
        requeueLockKey(TURTLE_QUEUE),
        "1",
        "PX",
        Math.max(REQUEUE_AFTER_MS - 50, 50),
        "NX",
      );
      if (taken !== "OK") return 0;
      const started = Date.now();
      const queued = await requeueLost(app.db, app.queue, app.redis, {
        queuedForMs: REQUEUE_AFTER_MS,
        // A live worker's lock would have kept the entry; past two lock periods it is gone.
        runningGraceMs: 2 * WORKER_LOCK_MS + REQUEUE_AFTER_MS,
      });
      // A sweep costs some 30 µs per queued job: behind a deep backlog the next one waits
      // ten times as long as this one took, so sweeping stays under a tenth of one API's time.
      const tookMs = Date.now() - started;
      if (10 * tookMs > REQUEUE_AFTER_MS) {
        await app.redis.set(requeueLockKey(TURTLE_QUEUE), "1", "PX", 9 * tookMs);
      }
      if (queued > 0) {
        app.log.warn(
          { queued },
          "queued again jobs recorded in Postgres but missing from the queue",
        );
      }
      return queued;
    };

    const run = (): Promise<number> => {
      sweeping ??= sweep()
        .catch((error: unknown) => {
          // Postgres or Redis away: the next period tries again.
          app.log.warn({ err: error }, "could not check the queue for lost jobs");
          return 0;
        })
        .finally(() => {
          sweeping = undefined;
        });
      return sweeping;
    };

    app.decorate("requeueLost", run);
    let timer: NodeJS.Timeout | undefined;
    app.addHook("onReady", async () => {
      timer = setInterval(() => void run(), REQUEUE_AFTER_MS);
      timer.unref();
    });
    // Before the queue and connections it uses close.
    app.addHook("preClose", async () => {
      clearInterval(timer);
      await sweeping;
    });
  },
  { name: "requeue", dependencies: ["db", "redis", "queue"] },
);
