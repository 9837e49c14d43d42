// A run's live activity — steps starting and ending, lines logged — published in batches on the
// job's own channel, for whoever streams the job's events (GET /v1/jobs/:id/events on any API
// instance). Best effort: the record is Postgres; a lost batch costs a watcher a live line.
import { type JobActivity, type JobActivityItem, publishJobActivity } from "@turtle/core";
import type { Redis } from "ioredis";

/** Longest an item waits before its batch goes out. */
const FLUSH_MS = 50;
/** A batch this large goes out at once. */
const BATCH_MAX = 500;
/** A logged line longer than this is cut in the live stream (the stored log has its own cap). */
const LINE_MAX = 4_000;
/** Bytes of a run's activity kept for late watchers; past them it is only published live. */
const KEPT_MAX_BYTES = 1024 * 1024;

export class ActivityStream {
  private batch: JobActivity[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly publisher: Redis;
  private readonly queue: string;
  private readonly jobId: string;
  private readonly run: number;
  private readonly delivery: number;
  private seq = 0;
  private keptBytes = 0;

  constructor(publisher: Redis, queue: string, jobId: string, run: number, delivery: number) {
    this.publisher = publisher;
    this.queue = queue;
    this.jobId = jobId;
    this.run = run;
    this.delivery = delivery;
  }

  readonly push = (item: JobActivityItem): void => {
    const cut =
      item.type === "log" && item.message.length > LINE_MAX
        ? { ...item, message: `${item.message.slice(0, LINE_MAX)}… [cut]` }
        : item;
    this.batch.push({ ...cut, run: this.run, delivery: this.delivery, seq: ++this.seq });
    if (this.batch.length >= BATCH_MAX) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  };

  /**
   * Sends what is batched now; later publishes on the same connection arrive after it. `ended`:
   * the run is over, and what was kept for late watchers goes soon.
   */
  flush(ended = false): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    // A run that never published anything has no backlog to shorten: most short jobs.
    if (this.batch.length === 0 && (!ended || this.seq === 0)) return;
    const batch = this.batch;
    this.batch = [];
    this.keptBytes += batch.reduce(
      (bytes, item) => bytes + (item.type === "log" ? item.message.length : 0) + 120,
      0,
    );
    const keep = this.keptBytes <= KEPT_MAX_BYTES;
    publishJobActivity(this.publisher, this.queue, this.jobId, this.run, batch, {
      keep,
      ended,
    }).catch(() => {});
  }
}
