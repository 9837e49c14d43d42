// Requests that reach a worker in the moment between a job's start in Postgres and its run.
import { channels, createRedis, loadConfig } from "@turtle/core";
import type { Db } from "@turtle/db";
import { eventually, test as it } from "@turtle/test-support";
import { afterEach, describe, expect } from "vitest";
import { createTurtleWorker, type TurtleWorker } from "../src/worker.ts";

let worker: TurtleWorker | undefined;

// Before the platform fixture is torn down: the worker runs on its database and queue.
afterEach(async () => {
  await worker?.close(0);
  worker = undefined;
});

/**
 * `db`, except that the reply to a batch of job starts reaches the worker only after `between`
 * has run: what a worker sees when that reply is slower to arrive than a request sent after it.
 */
function replyLate(db: Db, between: (started: Array<{ id: string }>) => Promise<void>): Db {
  return new Proxy(db, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (property !== "$queryRaw") return typeof value === "function" ? value.bind(target) : value;
      return async (strings: TemplateStringsArray, ...values: unknown[]) => {
        const rows = await target.$queryRaw(strings, ...values);
        if (strings[0]?.includes("SET status = 'running'")) {
          await between(rows as Array<{ id: string }>);
        }
        return rows;
      };
    },
  });
}

describe("a cancel request that comes before the run that started the job is registered", () => {
  it.override("platformOptions", { label: "cancel-race" });

  it("cancels the job rather than letting it run to success", async ({ platform: current }) => {
    const config = loadConfig({ ...process.env, ...current.env });
    const redis = createRedis(config.REDIS_URL, "test-worker");
    const subscriber = createRedis(config.REDIS_URL, "test-worker-events");
    let cancels = 0;
    const db = replyLate(current.db, async (started) => {
      for (const { id } of started) {
        // As the API does for a running job: record the request, then tell the workers.
        await current.db.job.updateMany({
          where: { id, status: "running" },
          data: { cancelRequestedAt: new Date() },
        });
        const heard = new Promise((resolve) => subscriber.once("message", resolve));
        await current.redis.publish(channels(config.TURTLE_QUEUE).cancel, id);
        await heard;
        cancels++;
      }
    });
    worker = createTurtleWorker({ config, db, redis, subscriber });
    try {
      await worker.ready();
      const job = await current.submit({ code: "return 'ran';" });
      const done = await current.waitFor(job.id, ["succeeded", "failed", "cancelled"]);
      expect(cancels).toBe(1);
      expect(done).toMatchObject({ status: "cancelled" });
    } finally {
      await worker.close(0);
      worker = undefined;
      redis.disconnect();
    }
  });
});

describe("a worker's shutdown that comes before the run that started the job is registered", () => {
  it.override("platformOptions", { label: "shutdown-race" });

  it("hands the job back to the queue rather than letting it run to its end", async ({
    platform: current,
  }) => {
    const config = loadConfig({ ...process.env, ...current.env });
    const redis = createRedis(config.REDIS_URL, "test-worker");
    const subscriber = createRedis(config.REDIS_URL, "test-worker-events");
    let closed: Promise<void> | undefined;
    const db = replyLate(current.db, async (started) => {
      if (started.length === 0 || closed !== undefined) return;
      // No grace: the run is to stop at once, and the shutdown signal is aborted by now.
      closed = worker?.close(0);
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
    worker = createTurtleWorker({ config, db, redis, subscriber });
    try {
      await worker.ready();
      const job = await current.submit({ code: "return 'ran';" });
      await eventually("the worker to close", async () =>
        closed === undefined ? undefined : true,
      );
      await closed;
      const after = await current.db.job.findUniqueOrThrow({ where: { id: job.id } });
      expect(after).toMatchObject({ status: "queued", result: null });
    } finally {
      worker = undefined;
      redis.disconnect();
    }
  });
});
