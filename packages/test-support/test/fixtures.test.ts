// The fixtures themselves: what each gives, and that the file's overrides reach them.
import { describe, expect } from "vitest";
import { eventually, test } from "../src/index.ts";

test.override("apiOptions", { env: { MAX_CODE_BYTES: "1234" } });

describe("the fixtures", () => {
  test("give one database and one API per file, configured by the file's override", async ({
    api,
    database,
  }) => {
    expect(api.config.DATABASE_URL).toBe(database.url);
    expect(api.config.MAX_CODE_BYTES).toBe(1234);
    const health = await api.call({ method: "GET", url: "/healthz" });
    expect(health.statusCode).toBe(200);
  });

  test("give each test a queue name of its own", async ({ queueName, api }) => {
    expect(queueName).not.toBe(api.config.TURTLE_QUEUE);
  });

  test("give a platform whose API takes its key and sees its jobs", async ({ platform }) => {
    const job = await platform.submit({ code: "return 1;" });
    const read = await platform.call({ method: "GET", url: `/v1/jobs/${job.id}` });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({ id: job.id, status: "queued" });
  });
});

describe("a suite's platform options", () => {
  test.override("platformOptions", { label: "options", env: { WORKER_LOCK_MS: "5000" } });

  test("reach the platforms of its tests", async ({ platform }) => {
    expect(platform.env.WORKER_LOCK_MS).toBe("5000");
    expect(platform.env.TURTLE_QUEUE).toMatch(/^test-options-/);
  });
});

describe("eventually", () => {
  test("returns the first value that is not undefined, trying a throwing check again", async () => {
    let calls = 0;
    const value = await eventually("the third call", () => {
      calls += 1;
      if (calls === 1) throw new Error("not yet");
      return calls >= 3 ? calls : undefined;
    });
    expect(value).toBe(3);
  });

  test("fails at its deadline, saying what it waited for and the check's last error", async () => {
    await expect(
      eventually(
        "a thing that never holds",
        () => {
          throw new Error("still false");
        },
        200,
      ),
    ).rejects.toThrow("timed out waiting for a thing that never holds: still false");
  });
});
