// A run's live activity — steps starting and ending, lines logged — published in batches on the
// job's own channel, for whoever streams the job's events (GET /v1/jobs/:id/events on any API
// instance). Best effort: the record is Postgres; a lost batch costs a watcher a live line.
import { type JobActivity, type JobActivityItem, publishJobActivity } from "@turtle/core";
import type { Redis } from "ioredis";

/** Longest an item waits before its batch goes out. */
const FLUSH_MS = 50;
/** A batch this large goes out at once. */
const BATCH_MAX = 500;

export class ActivityStream {
  private batch: JobActivity[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly publisher: Redis;
  private readonly queue: string;
  private readonly jobId: string;
  private readonly run: number;
  private seq = 0;

  constructor(publisher: Redis, queue: string, jobId: string, run: number) {
    this.publisher = publisher;
    this.queue = queue;
    this.jobId = jobId;
    this.run = run;
  }

  readonly push = (item: JobActivityItem): void => {
    this.batch.push({ ...item, run: this.run, seq: ++this.seq });
    if (this.batch.length >= BATCH_MAX) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  };

  /** Sends what is batched now; later publishes on the same connection arrive after it. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    publishJobActivity(this.publisher, this.queue, this.jobId, this.run, batch).catch(() => {});
  }
}
