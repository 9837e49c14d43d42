// A job that waits on its worker for its project's share holds its queue entry all along.
import { test as it } from "@turtle/test-support";
import { describe, expect } from "vitest";

describe("a job held for its project's share", () => {
  it.override("platformOptions", {
    label: "held-lease",
    env: {
      WORKER_LOCK_MS: "1000",
      WORKER_CONCURRENCY: "4",
      WORKER_PROJECT_CONCURRENCY: "1",
      WORKER_SHARE_WAIT_MS: "30000",
    },
  });

  it("keeps its lease while held longer than the lock: it runs once, not lost and given back", async ({
    platform: current,
    worker,
  }) => {
    const first = await current.submit({
      code: "await control.sleep({ ms: 3000 }); return 'first';",
    });
    const held = await current.submit({
      code: "await control.echo({ held: true }); return 'held';",
    });
    // Held about three lock durations behind the first, its lock renewed all the while.
    expect(await current.waitFor(first.id, ["succeeded", "failed"])).toMatchObject({
      status: "succeeded",
    });
    const done = await current.waitFor(held.id, ["succeeded", "failed", "cancelled"]);
    expect(done).toMatchObject({ status: "succeeded", result: "held", deliveries: 1 });
    expect(worker.output()).not.toContain("queue lock lost");
  });
});
