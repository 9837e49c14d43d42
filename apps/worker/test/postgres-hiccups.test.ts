// A query that fails once under a run (Postgres restarting, a network blip) delays the job; it
// neither fails the job nor leaves it running in Postgres with its entry in BullMQ's failed set.
import { createRedis, loadConfig } from "@turtle/core";
import { createDb, type Db } from "@turtle/db";
import { test as it } from "@turtle/test-support";
import { afterAll, afterEach, describe, expect } from "vitest";
import { createTurtleWorker, type TurtleWorker } from "../src/worker.ts";

let worker: TurtleWorker | undefined;
const unreachable = createDb("postgresql://postgres@127.0.0.1:1/turtle");
afterAll(() => unreachable.$disconnect());

// Before the platform fixture is torn down: the worker runs on its database and queue.
afterEach(async () => {
  await worker?.close(0);
  worker = undefined;
});

/** `db`, whose first `model.method` call goes to a Postgres that cannot be reached. */
function failOnce(db: Db, model: "toolPolicy" | "project", method: "findMany" | "findUnique"): Db {
  let failed = false;
  return new Proxy(db, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (property !== model) return typeof value === "function" ? value.bind(target) : value;
      return new Proxy(value as object, {
        get(delegate, name) {
          const real = Reflect.get(delegate, name, delegate);
          if (name !== method || failed)
            return typeof real === "function" ? real.bind(delegate) : real;
          return (...args: unknown[]) => {
            failed = true;
            const other = unreachable[model] as unknown as Record<
              string,
              (...a: unknown[]) => unknown
            >;
            return other[method]?.(...args);
          };
        },
      });
    },
  });
}

describe.each([
  ["its project's tool policies", "toolPolicy", "findMany"],
  ["its project's servers", "project", "findUnique"],
] as const)("a job whose read of %s fails once", (_label, model, method) => {
  it.override("platformOptions", { label: `hiccup-${model}` });

  it("is delivered again later and succeeds", { timeout: 60_000 }, async ({
    platform: current,
  }) => {
    const config = loadConfig({ ...process.env, ...current.env });
    const redis = createRedis(config.REDIS_URL, "test-worker");
    const subscriber = createRedis(config.REDIS_URL, "test-worker-events");
    worker = createTurtleWorker({
      config,
      db: failOnce(current.db, model, method),
      redis,
      subscriber,
    });
    try {
      await worker.ready();
      const job = await current.submit({ code: "return 'ran';" });
      const done = await current.waitFor(job.id, ["succeeded", "failed", "cancelled"], 30_000);
      expect(done).toMatchObject({ status: "succeeded", result: "ran" });
      expect(await current.queue.getFailedCount()).toBe(0);
    } finally {
      await worker.close(0);
      worker = undefined;
      redis.disconnect();
    }
  });
});
