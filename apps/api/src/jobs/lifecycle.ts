// Where a job's lifecycle can be cut short on purpose: tests make the API die between the writes
// of a submission (TEST_KILL_AT) to prove that nothing is lost.
import type { Config } from "@turtle/core";
import type { FastifyInstance } from "fastify";

/** Points of a submission where TEST_KILL_AT can make the API die; see the config. */
export type KillPoint = NonNullable<Config["TEST_KILL_AT"]>;

/** The TEST_KILL_AT hook: dies at once, as a process killed by the OOM killer or a kill -9. */
export function killAt(app: FastifyInstance, point: KillPoint): void {
  if (app.config.TEST_KILL_AT === point) process.kill(process.pid, "SIGKILL");
}
