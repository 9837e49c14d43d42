// A short program can take esbuild minutes to compile (functions nested thousands deep, each
// naming the same function: a few tens of kilobytes). The job's deadline and a cancel must hold
// from its start, compile included: otherwise such a program holds a worker's slot far past its
// timeoutMs, and a few of them hold every slot of a worker.
import { test } from "@turtle/test-support";
import { expect } from "vitest";

/** About 70 kB that esbuild takes minutes over (over 20 s already at 2,000 deep). */
const SLOW_TO_COMPILE = `return ${"function f() { return ".repeat(3000)}1${"}".repeat(3000)};`;

test("a job whose program is slow to compile ends at its deadline, or when cancelled", async ({
  platform,
  worker,
}) => {
  expect(worker).toBeDefined();
  const late = await platform.submit({ code: SLOW_TO_COMPILE, timeoutMs: 1_000 });
  const ended = await platform.waitFor(late.id, ["succeeded", "failed", "cancelled"], 30_000);
  expect(ended).toMatchObject({ status: "failed", error: { code: "timeout" } });
  expect(JSON.stringify(ended.error)).toMatch(/while its program was still compiling/);

  const cancelled = await platform.submit({ code: `${SLOW_TO_COMPILE}\n// 2`, timeoutMs: 600_000 });
  await platform.waitFor(cancelled.id, ["running"], 30_000);
  const response = await platform.call({ method: "POST", url: `/v1/jobs/${cancelled.id}/cancel` });
  expect(response.statusCode).toBeLessThan(300);
  expect(
    await platform.waitFor(cancelled.id, ["succeeded", "failed", "cancelled"], 30_000),
  ).toMatchObject({ status: "cancelled" });
});
