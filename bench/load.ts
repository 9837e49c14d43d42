// The load test: jobs submitted over HTTP by a load generator (autocannon) to a real API and
// worker process, each job's input numbered; then every job must end `succeeded`, once, with
// its own input as its result — none lost, none run twice. `npm run bench -- load` reports the
// submit latency and the end-to-end throughput beside their ceilings measured in the same run
// (the same load on GET /healthz, and raw BullMQ); the load test in apps/api/test checks the
// counts.

import { runLoad } from "@turtle/test-support/load";
import type { Figure } from "./measure.ts";

export async function benchLoad(): Promise<Figure[]> {
  const result = await runLoad(20_000);
  const { check } = result;
  if (
    result.accepted !== result.jobs ||
    check.rows !== result.jobs ||
    check.succeeded !== result.jobs ||
    check.distinctInputs !== result.jobs ||
    check.maxAttempts !== 1 ||
    check.wrongResults !== 0
  ) {
    throw new Error(`the load test lost or repeated jobs: ${JSON.stringify(result)}`);
  }
  return [
    {
      name: `${result.jobs} jobs over HTTP (50 connections): submit latency p50`,
      unit: "ms",
      value: result.submitP50Ms,
      baseline: { name: "GET /healthz, same load, p50", value: result.healthP50Ms },
      target: { kind: "info", value: 0 },
    },
    {
      name: `${result.jobs} jobs over HTTP: submit latency p99`,
      unit: "ms",
      value: result.submitP99Ms,
      baseline: { name: "GET /healthz, same load, p99", value: result.healthP99Ms },
      target: { kind: "info", value: 0 },
    },
    {
      name: `${result.jobs} jobs over HTTP: end-to-end, submitted to succeeded in Postgres`,
      unit: "jobs/s",
      value: result.endToEndJobsPerSecond,
      baseline: { name: "submissions accepted per second", value: result.submitsPerSecond },
      target: { kind: "info", value: 0 },
    },
  ];
}
