// Fair shares of one worker's run slots between projects. A job waiting on a slow tool call
// costs memory, not CPU, so a worker holds more jobs than it has cores; but first come, first
// served, one project's jobs waiting on I/O would still take every slot, and another project's
// runnable job would wait for them. So each project runs at most `perProject` jobs at once on a
// worker (fewer than its slots): the rest of the slots are always there for other projects.
//
// A job fetched for a project at its share waits here, without running and without being
// counted as a delivery, for one of that project's runs to end (a project alone keeps its next
// jobs at hand, so its own throughput does not suffer). It goes back to the queue for a moment,
// keeping its priority, when another project's jobs wait at the queue's head and no slot here is
// free for them, or after `waitMs` (so that an idle worker elsewhere can take it), or when the
// worker closes.

import type { QueuedJob } from "@turtle/core";
import { DelayedError, type Job as QueueEntry, WaitingError, type Worker } from "bullmq";
import type { Redis } from "ioredis";

/** Gives a granted share back (idempotent). */
export type ReleaseShare = () => void;

export interface ProjectSharesOptions {
  /** Runs of one project a worker makes at once. */
  perProject: number;
  /** The worker's slots, all projects together (BullMQ's concurrency). */
  slots: number;
  /** Longest a job waits here for its project's share before it goes back to the queue. */
  waitMs: number;
  /** How often the queue's head is read while jobs wait here. */
  peekMs?: number;
  /**
   * The projects of the next `count` entries waiting in the queue, in order (undefined for an
   * entry that names none). Not fatal when it fails: jobs then go back after waitMs.
   */
  peek(count: number): Promise<Array<string | undefined>>;
  onError?: (error: unknown) => void;
}

interface Waiter {
  projectId: string;
  settle(share: ReleaseShare | null): void;
}

export class ProjectShares {
  private readonly options: ProjectSharesOptions;
  private readonly running = new Map<string, number>();
  /** Jobs waiting for their project's share, oldest first. */
  private waiters: Waiter[] = [];
  private peeking: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: ProjectSharesOptions) {
    this.options = options;
  }

  /** Runs of the project on this worker now. */
  runs(projectId: string): number {
    return this.running.get(projectId) ?? 0;
  }

  /** Jobs waiting here for a share. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * A share of the worker for one run of the project: at once while the project is under its
   * share and none of its jobs wait before this one; else when one of its runs ends. `null` means
   * give the job back to the queue. An entry without a project runs unshared. When `lost` aborts
   * (the worker lost the entry's queue lock while the job waited), the job stops waiting at once
   * with `null`: the caller must then leave the entry alone, as another worker may hold it.
   */
  acquire(projectId: string | undefined, lost?: AbortSignal): Promise<ReleaseShare | null> {
    if (projectId === undefined) return Promise.resolve(() => {});
    if (this.closed || lost?.aborted) return Promise.resolve(null);
    if (this.runs(projectId) < this.options.perProject && !this.hasWaiters(projectId)) {
      return Promise.resolve(this.grant(projectId));
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.giveBack(waiter), this.options.waitMs);
      const onLost = () => this.giveBack(waiter);
      const waiter: Waiter = {
        projectId,
        settle: (share) => {
          clearTimeout(timer);
          lost?.removeEventListener("abort", onLost);
          resolve(share);
        },
      };
      this.waiters.push(waiter);
      lost?.addEventListener("abort", onLost, { once: true });
      this.peekSoon();
    });
  }

  /** Every waiting job goes back to the queue, and no more are taken. */
  close(): void {
    this.closed = true;
    clearTimeout(this.peeking);
    for (const waiter of this.waiters.splice(0)) waiter.settle(null);
  }

  private hasWaiters(projectId: string): boolean {
    return this.waiters.some((waiter) => waiter.projectId === projectId);
  }

  private grant(projectId: string): ReleaseShare {
    this.running.set(projectId, this.runs(projectId) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.runs(projectId) - 1;
      if (left > 0) this.running.set(projectId, left);
      else this.running.delete(projectId);
      // The project's next job here takes the share it gave back.
      const next = this.waiters.findIndex((waiter) => waiter.projectId === projectId);
      if (next === -1 || this.closed) return;
      const [waiter] = this.waiters.splice(next, 1);
      waiter?.settle(this.grant(projectId));
    };
  }

  private giveBack(waiter: Waiter): void {
    const index = this.waiters.indexOf(waiter);
    if (index === -1) return;
    this.waiters.splice(index, 1);
    waiter.settle(null);
  }

  private peekSoon(): void {
    if (this.peeking !== undefined || this.closed) return;
    this.peeking = setTimeout(() => void this.peek(), this.options.peekMs ?? 50);
  }

  /**
   * Reads the queue's head for jobs of other projects that could run here but find no free slot,
   * and gives back as many waiting jobs (the oldest first) to make room for them.
   */
  private async peek(): Promise<void> {
    try {
      if (this.waiters.length === 0) return;
      const { slots, perProject } = this.options;
      const free = slots - this.waiters.length - this.totalRuns();
      // As deep as the worker's slots: another project's job may stand behind entries of
      // projects at their share here.
      const head = await this.options.peek(slots);
      // Places another project's jobs would take here, counting each project's share.
      const taken = new Map<string, number>();
      let runnable = 0;
      for (const projectId of head) {
        if (projectId === undefined) {
          runnable++;
          continue;
        }
        const runs = this.runs(projectId) + (taken.get(projectId) ?? 0);
        if (runs >= perProject || this.hasWaiters(projectId)) continue;
        taken.set(projectId, (taken.get(projectId) ?? 0) + 1);
        runnable++;
      }
      const toGiveBack = Math.min(runnable - Math.max(free, 0), this.waiters.length);
      for (const waiter of this.waiters.splice(0, Math.max(toGiveBack, 0))) waiter.settle(null);
    } catch (error) {
      this.options.onError?.(error);
    } finally {
      this.peeking = undefined;
      if (this.waiters.length > 0) this.peekSoon();
    }
  }

  private totalRuns(): number {
    let total = 0;
    for (const runs of this.running.values()) total += runs;
    return total;
  }
}

// The queue's side: giving a job back, and reading which projects' jobs are next.

/** How long a job given back for another project's sake stays out of the queue's head. */
const GIVE_BACK_MS = 100;

/**
 * A job that did not get its project's share goes back to the queue, at its priority, for a
 * moment: long enough for the slot it leaves to take another project's job, not its own again.
 * Nothing changed in Postgres (the job is still queued) and no attempt is counted. Should Redis
 * refuse the move while this worker still holds the entry's lock (`holds`), the job runs here
 * after all rather than be lost to BullMQ's failed set; refused because the lock lapsed, the
 * entry is another worker's (or back in the queue) and this one leaves it alone.
 */
export async function giveBack(
  entry: QueueEntry<QueuedJob>,
  token: string | undefined,
  holds: () => boolean,
): Promise<ReleaseShare> {
  try {
    await entry.moveToDelayed(Date.now() + GIVE_BACK_MS, token);
  } catch {
    if (holds()) return () => {};
    throw new WaitingError();
  }
  throw new DelayedError();
}

/**
 * KEYS[1] the wait list, KEYS[2] the prioritized set; ARGV[1] the job key prefix, ARGV[2] how
 * many. The data of the next entries BullMQ hands out: the wait list's (taken from its tail),
 * then the prioritized set's lowest scores.
 */
const PEEK_ENTRIES = `
local count = tonumber(ARGV[2])
local ids = redis.call('LRANGE', KEYS[1], -count, -1)
if #ids < count then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, count - #ids - 1)) do ids[#ids + 1] = id end
end
local data = {}
for i, id in ipairs(ids) do data[i] = redis.call('HGET', ARGV[1] .. id, 'data') or '{}' end
return data`;

/** The projects of the next `count` queue entries (see ProjectShares' peek). */
export async function peekProjects(
  redis: Redis,
  bull: Worker<QueuedJob, void, "run">,
  count: number,
): Promise<Array<string | undefined>> {
  if (count <= 0) return [];
  if (typeof (redis as { turtlePeekEntries?: unknown }).turtlePeekEntries !== "function") {
    redis.defineCommand("turtlePeekEntries", { numberOfKeys: 2, lua: PEEK_ENTRIES });
  }
  const commands = redis as unknown as {
    turtlePeekEntries(
      wait: string,
      prioritized: string,
      prefix: string,
      n: number,
    ): Promise<string[]>;
  };
  const data = await commands.turtlePeekEntries(
    bull.toKey("wait"),
    bull.toKey("prioritized"),
    bull.toKey(""),
    count,
  );
  return data.map((text) => {
    try {
      const projectId = (JSON.parse(text) as Partial<QueuedJob>).projectId;
      return typeof projectId === "string" ? projectId : undefined;
    } catch {
      return undefined;
    }
  });
}
