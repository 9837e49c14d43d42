// What a worker measures for Prometheus, and how it reaches /metrics: each worker keeps its own
// registry and stores a snapshot of it in Redis every few seconds (expiring when the worker
// stops), and any API instance's /metrics adds up the snapshots of the whole fleet.
import { type JobActivityItem, type WorkerInfo, workerInfoKey } from "@turtle/core";
import type { RunErrorCode } from "@turtle/sandbox";
import type { Redis } from "ioredis";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** How long a key id stays in the missing-keys gauge after its last job was handed back. */
const KEY_MISSING_SHOWN_MS = 5 * 60_000;

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly jobs = new Histogram({
    name: "turtle_job_duration_seconds",
    help: "Wall time of job runs, by how they ended",
    labelNames: ["status"],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly steps = new Histogram({
    name: "turtle_step_duration_seconds",
    help: "Duration of executed tool calls, by server, tool and outcome",
    labelNames: ["server", "tool", "status"],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly toolErrors = new Counter({
    name: "turtle_tool_errors_total",
    help: "Tool calls that failed, by server and tool",
    labelNames: ["server", "tool"],
    registers: [this.registry],
  });
  private readonly retries = new Counter({
    name: "turtle_step_retries_total",
    help: "Tool calls made again because their server went away, by server and tool",
    labelNames: ["server", "tool"],
    registers: [this.registry],
  });
  private readonly kills = new Counter({
    name: "turtle_isolate_kills_total",
    help: "Runs whose isolate was stopped: wall-clock timeout, CPU budget or memory limit",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  private readonly stepKinds = new Counter({
    name: "turtle_steps_total",
    help: "Steps of finished runs: executed (the tool was called) or replayed (from a checkpoint)",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  private readonly batches = new Histogram({
    name: "turtle_checkpoint_batch_size",
    help: "Checkpoints written per group commit",
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers: [this.registry],
  });

  /** When (monotonic) a job was last handed back for each key id this worker lacks. */
  private readonly keysMissing = new Map<string, number>();
  private readonly keysMissingGauge = new Gauge({
    name: "turtle_secrets_keys_missing",
    help: "Keys this worker lacks (neither SECRETS_KEY nor in SECRETS_READ_KEYS) that servers' secrets are sealed with, by key id: 1 while jobs were handed back for it in the last 5 minutes",
    labelNames: ["kid"],
    registers: [this.registry],
    collect: () => {
      this.keysMissingGauge.reset();
      const now = performance.now();
      for (const [kid, at] of this.keysMissing) {
        if (now - at > KEY_MISSING_SHOWN_MS) this.keysMissing.delete(kid);
        else this.keysMissingGauge.set({ kid }, 1);
      }
    },
  });
  private readonly keyMissingJobs = new Counter({
    name: "turtle_jobs_key_missing_total",
    help: "Jobs this worker handed back to the queue because it lacks the key their servers' secrets are sealed with, by key id",
    labelNames: ["kid"],
    registers: [this.registry],
  });

  /** A step's start or end, as the run reports it live. */
  readonly step = (item: JobActivityItem): void => {
    if (item.type !== "step" || item.durationMs === undefined) return;
    const labels = { server: item.server, tool: item.tool, status: item.status };
    this.steps.observe(labels, item.durationMs / 1000);
    if (item.status === "failed") this.toolErrors.inc({ server: item.server, tool: item.tool });
  };

  /** Runs finished since the worker started, by status (for WorkerInfo). */
  readonly finished: Record<string, number> = {};

  /** A job handed back because this worker lacks the key `kid`. */
  keyMissing(kid: string): void {
    this.keysMissing.set(kid, performance.now());
    this.keyMissingJobs.inc({ kid });
  }

  retry(server: string, tool: string): void {
    this.retries.inc({ server, tool });
  }

  run(ended: {
    status: string;
    wallMs: number;
    errorCode?: RunErrorCode;
    executed: number;
    replayed: number;
  }): void {
    this.jobs.observe({ status: ended.status }, ended.wallMs / 1000);
    this.finished[ended.status] = (this.finished[ended.status] ?? 0) + 1;
    const { errorCode } = ended;
    if (errorCode === "timeout" || errorCode === "cpu_limit" || errorCode === "memory_limit") {
      this.kills.inc({ reason: errorCode });
    }
    if (ended.executed > 0) this.stepKinds.inc({ kind: "executed" }, ended.executed);
    if (ended.replayed > 0) this.stepKinds.inc({ kind: "replayed" }, ended.replayed);
  }

  readonly batch = (size: number): void => {
    this.batches.observe(size);
  };

  /**
   * Stores a snapshot and the worker's description now and every `everyMs`, each living 3
   * periods and listed in `index` until then; returns the stop, which removes them.
   */
  publish(
    redis: Redis,
    index: string,
    key: string,
    everyMs: number,
    describe: () => WorkerInfo,
  ): () => Promise<void> {
    let stopped = false;
    let storing: Promise<unknown> = Promise.resolve();
    const store = () => {
      storing = (async () => {
        const snapshot = JSON.stringify(await this.registry.getMetricsAsJSON());
        if (stopped) return;
        const until = Date.now() + everyMs * 3;
        await redis
          .pipeline()
          .set(key, snapshot, "PX", everyMs * 3)
          .set(workerInfoKey(key), JSON.stringify(describe()), "PX", everyMs * 3)
          .zadd(index, until, key)
          .exec();
      })().catch(() => {});
    };
    store();
    const timer = setInterval(store, everyMs);
    timer.unref();
    return async () => {
      stopped = true;
      clearInterval(timer);
      await storing;
      await redis
        .pipeline()
        .del(key, workerInfoKey(key))
        .zrem(index, key)
        .exec()
        .catch(() => {});
    };
  }
}
