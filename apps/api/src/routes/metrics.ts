// GET /metrics for Prometheus (behind the API key, like everything else: a scrape config sends
// it as a bearer token). The fleet's figures: jobs by status and queue depth, read at scrape time,
// plus every live worker's own metrics (job and step durations, tool errors, isolate kills,
// executed and replayed steps, checkpoint batch sizes), which workers store in Redis, each
// series labelled with its worker.
import { readLiveWorkers } from "@turtle/core";
import {
  AggregatorRegistry,
  Gauge,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from "prom-client";

type Snapshot = MetricObjectWithValues<MetricValue<string>>[];

import { JOB_STATUSES } from "../jobs/views.ts";
import type { TypedInstance } from "../typed-instance.ts";

const QUEUE_STATES = ["waiting", "active", "delayed", "prioritized", "waiting-children"] as const;

export default async function metricsRoutes(app: TypedInstance) {
  const registry = new Registry();
  const queue = app.config.TURTLE_QUEUE;
  let workers = 0;

  new Gauge({
    name: "turtle_jobs",
    help: "Jobs by project and status (from Postgres)",
    labelNames: ["project", "status"],
    registers: [registry],
    async collect() {
      const [counts, projects] = await Promise.all([
        app.db.job.groupBy({ by: ["projectId", "status"], _count: { _all: true } }),
        app.db.project.findMany({ select: { id: true, name: true } }),
      ]);
      const count = new Map(
        counts.map((row) => [`${row.projectId}/${row.status}`, row._count._all]),
      );
      // A project removed since the last scrape leaves no series behind.
      this.reset();
      for (const project of projects) {
        for (const status of JOB_STATUSES) {
          this.set({ project: project.name, status }, count.get(`${project.id}/${status}`) ?? 0);
        }
      }
    },
  });
  new Gauge({
    name: "turtle_queue_depth",
    help: "Queue entries by state (from BullMQ)",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const counts = await app.queue.getJobCounts(...QUEUE_STATES);
      for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
    },
  });
  new Gauge({
    name: "turtle_workers",
    help: "Workers whose metrics are live (stored within the last 3 periods)",
    registers: [registry],
    collect() {
      this.set(workers);
    },
  });

  /**
   * Each live worker's snapshot, its series labelled with the worker: summed here, a counter
   * would fall whenever a worker stops, which Prometheus reads as a reset; PromQL adds them up.
   */
  async function workerSnapshots(): Promise<Snapshot[]> {
    const stored = await readLiveWorkers<Snapshot>(app.redis, queue, (key) => key);
    return stored.flatMap(({ worker, value: metrics }) => {
      if (!Array.isArray(metrics)) return [];
      for (const metric of metrics) {
        for (const sample of metric.values ?? []) sample.labels = { ...sample.labels, worker };
      }
      return [metrics];
    });
  }

  app.get(
    "/metrics",
    {
      // The whole fleet's figures, every project's: for the operator.
      config: { scope: "operator" },
      schema: {
        operationId: "getMetrics",
        summary: "Prometheus metrics of the whole fleet",
        response: { 200: { type: "string", description: "Prometheus text format" } },
      },
    },
    async (_request, reply) => {
      const snapshots = await workerSnapshots();
      workers = snapshots.length;
      const own = await registry.getMetricsAsJSON();
      const fleet = AggregatorRegistry.aggregate([own, ...snapshots]);
      return reply.type(fleet.contentType).send(await fleet.metrics());
    },
  );
}
