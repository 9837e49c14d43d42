// How a run knows, without a round trip, that its worker still holds the job's queue lock.
//
// BullMQ locks an entry for `lockMs` when a worker takes it and renews the lock every quarter to
// half of that. A worker cut off from Redis (Redis stalled, the network gone) cannot renew, and
// once the lock lapses in Redis another worker takes the entry and starts a second delivery of
// the job. The event that says a renewal failed comes only when Redis answers again, too late:
// by then the second delivery may be making calls. So each run keeps a local deadline instead —
// when the last renewal that Redis confirmed was *sent*, plus `lockMs` (Redis set the lock no
// earlier than that, so it lapses no earlier) — and stops making calls a margin before it.
import type { QueuedJob } from "@turtle/core";
import { type Job as QueueEntry, Worker, type WorkerOptions } from "bullmq";

/** One run's hold on its queue entry. */
export interface Lease {
  /**
   * Whether the run may still make a call: its lock is renewed as far as anyone can prove. A
   * lease past its deadline is lost at once (`onLost` runs) and stays lost.
   */
  holds(): boolean;
  /** The run is over: its entry is no longer watched. */
  release(): void;
}

interface Held {
  /** When (on the monotonic clock, `performance.now()`) the run may make no more calls. */
  until: number;
  lost: boolean;
  onLost: () => void;
}

/** The queue entries this worker's runs hold, each with the deadline of its lock. */
export class Leases {
  private readonly held = new Map<string, Held>();
  private readonly lockMs: number;
  /** Stop this much before the lock could lapse: timers run late on a busy machine. */
  private readonly marginMs: number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(lockMs: number) {
    this.lockMs = lockMs;
    this.marginMs = Math.ceil(lockMs / 10);
  }

  /**
   * A run's lease on the entry `entryId`, which the worker took (asked Redis for) at `takenAt`
   * (epoch ms, BullMQ's `processedOn`). `onLost` runs when the lease lapses or Redis refuses to
   * renew it.
   */
  take(entryId: string, takenAt: number, onLost: () => void): Lease {
    // Deadlines are kept on the monotonic clock: a wall clock set back must not extend them.
    const askedAt = performance.now() - Math.max(0, Date.now() - takenAt);
    const held: Held = { until: askedAt + this.lockMs - this.marginMs, lost: false, onLost };
    // A second delivery of an entry to this worker replaces the first (lost already) in the map.
    const before = this.held.get(entryId);
    if (before !== undefined) this.lose(before);
    this.held.set(entryId, held);
    this.sweeper ??= setInterval(this.sweep, Math.max(10, Math.floor(this.marginMs / 2)));
    this.sweeper.unref();
    return {
      holds: () => {
        if (held.lost) return false;
        if (performance.now() < held.until) return true;
        this.lose(held);
        return false;
      },
      release: () => {
        if (this.held.get(entryId) === held) this.held.delete(entryId);
        if (this.held.size === 0) {
          clearInterval(this.sweeper);
          this.sweeper = undefined;
        }
      },
    };
  }

  /** Redis renewed these entries' locks for `durationMs`, asked at `askedAt` (monotonic). */
  renewed(entryIds: Iterable<string>, askedAt: number, durationMs: number): void {
    const until = askedAt + durationMs - this.marginMs;
    for (const id of entryIds) {
      const held = this.held.get(id);
      if (held !== undefined && !held.lost && until > held.until) held.until = until;
    }
  }

  /** Redis refused to renew these entries' locks: they are someone else's, or gone. */
  refused(entryIds: Iterable<string>): void {
    for (const id of entryIds) {
      const held = this.held.get(id);
      if (held !== undefined) this.lose(held);
    }
  }

  private readonly sweep = () => {
    const now = performance.now();
    for (const held of this.held.values()) if (now >= held.until) this.lose(held);
  };

  private lose(held: Held): void {
    if (held.lost) return;
    held.lost = true;
    held.onLost();
  }
}

/**
 * BullMQ's worker, telling `leases` which locks Redis renewed and when they were asked for.
 * `extendJobLocks` is the method BullMQ's lock manager renews every lock through.
 */
export class LeasingWorker extends Worker<QueuedJob, void, "run"> {
  private readonly leases: Leases;

  constructor(
    name: string,
    processor: (entry: QueueEntry<QueuedJob, void, "run">, token?: string) => Promise<void>,
    options: WorkerOptions,
    leases: Leases,
  ) {
    super(name, processor, options);
    this.leases = leases;
  }

  override async extendJobLocks(
    jobIds: string[],
    tokens: string[],
    duration: number,
  ): Promise<string[]> {
    const askedAt = performance.now();
    const refused = await super.extendJobLocks(jobIds, tokens, duration);
    const lost = new Set(refused);
    this.leases.renewed(
      jobIds.filter((id) => !lost.has(id)),
      askedAt,
      duration,
    );
    this.leases.refused(lost);
    return refused;
  }
}
