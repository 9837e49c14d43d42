// Under load (jobs submitted over HTTP by autocannon to a real API and worker process), every
// accepted job ends `succeeded`, exactly once, with its own result. `npm run bench -- load` runs
// the same with 20,000 jobs and reports latency and throughput; this keeps the suite quick.
import { runLoad } from "@turtle/test-support/load";
import { describe, expect, it } from "vitest";

describe("a load of jobs over HTTP", () => {
  it("loses none and runs none twice", async () => {
    const result = await runLoad(2_000, 20);
    expect(result).toMatchObject({ accepted: 2_000, refused: 0, errors: 0 });
    expect(result.check).toEqual({
      rows: 2_000,
      succeeded: 2_000,
      distinctInputs: 2_000,
      maxAttempts: 1,
      wrongResults: 0,
    });
  }, 300_000);
});
