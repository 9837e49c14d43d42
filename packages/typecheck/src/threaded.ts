// Type-checking off the caller's thread, with a deadline. A check is CPU-bound for milliseconds
// (and type-level code can make it take seconds and gigabytes), so a server checking programs
// from untrusted clients runs the checker in a worker thread with a heap limit: its event loop
// stays free, and a check that outlives its deadline or its memory ends the thread (a fresh one
// takes the next check).
import { Worker } from "node:worker_threads";
import type { CheckRequest } from "./check-thread.ts";
import type { CheckResult } from "./type-checker.ts";

/** A check that could not be done for reasons of the checker, not of the program. */
export class TypeCheckUnavailableError extends Error {
  override name = "TypeCheckUnavailableError";
}

export interface ThreadedTypeChecker {
  /**
   * Resolves with the check; a program that takes too long or too much memory to check resolves
   * with one diagnostic saying so. Rejects with TypeCheckUnavailableError when the checker is
   * busy (too many checks waiting), closed or broken, and with the signal's reason when it aborts
   * while the check waits its turn.
   */
  check(code: string, declarations: string, signal?: AbortSignal): Promise<CheckResult>;
  /** Ends the thread; checks still waiting are rejected. */
  close(): Promise<void>;
}

export interface ThreadedTypeCheckerOptions {
  /**
   * Longest one check may run, in ms (default 10 s). Neither its wait in line nor the start of
   * a fresh thread counts.
   */
  timeoutMs?: number;
  /** The thread's heap limit, in MB (default 512): a check over it is stopped. */
  maxMemoryMb?: number;
  /** Checks that may wait for the thread before more are refused as busy (default 64). */
  maxWaiting?: number;
}

interface Pending {
  request: CheckRequest;
  resolve: (result: CheckResult) => void;
  reject: (error: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

const programFault = (message: string): CheckResult => ({
  ok: false,
  truncated: false,
  diagnostics: [{ line: 1, column: 1, endLine: 1, endColumn: 1, code: 0, message }],
});

export function createThreadedTypeChecker(
  options: ThreadedTypeCheckerOptions = {},
): ThreadedTypeChecker {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxMemoryMb = options.maxMemoryMb ?? 512;
  const maxWaiting = options.maxWaiting ?? 64;
  const waiting: Pending[] = [];
  let running: { pending: Pending; timer: NodeJS.Timeout | undefined } | undefined;
  let thread: { worker: Worker; ready: boolean } | undefined;
  let nextId = 1;
  let closed = false;

  function start(): NonNullable<typeof thread> {
    const worker = new Worker(new URL("./check-thread.ts", import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: maxMemoryMb },
    });
    // A thread waiting for work does not keep the process alive.
    worker.unref();
    const started = { worker, ready: false };
    const current = () => thread === started;
    worker.on("message", (message: { ready?: true; id?: number; result?: CheckResult }) => {
      if (!current()) return;
      if (message.ready) {
        started.ready = true;
        // The deadline of the check that waited for the thread starts now.
        if (running !== undefined) arm(running);
        return;
      }
      if (running?.pending.request.id === message.id && message.result !== undefined) {
        finish((pending) => pending.resolve(message.result as CheckResult));
      }
    });
    worker.on("error", (error) => {
      if (!current()) return;
      thread = undefined;
      // Out of memory, or a crash while checking: the program's doing, as far as we can tell.
      const memory = /memory/i.test(error.message);
      const reason = memory
        ? `Type-checking this program needed more than ${maxMemoryMb} MB, so it was stopped: simplify its types, or run it without the check.`
        : `The type checker failed on this program: ${error.message}`;
      finish((pending) => pending.resolve(programFault(reason)));
    });
    worker.on("exit", () => {
      if (!current()) return;
      thread = undefined;
      finish((pending) =>
        pending.reject(new TypeCheckUnavailableError("the type checker stopped; try again")),
      );
    });
    return started;
  }

  function arm(job: NonNullable<typeof running>): void {
    const owner = thread;
    job.timer = setTimeout(() => {
      if (thread === owner) thread = undefined;
      owner?.worker.terminate().catch(() => {});
      finish((pending) =>
        pending.resolve(
          programFault(
            `Type-checking took longer than ${timeoutMs} ms, so it was stopped: simplify the program's types, or run it without the check.`,
          ),
        ),
      );
    }, timeoutMs);
  }

  function finish(settle: (pending: Pending) => void): void {
    if (running === undefined) return;
    clearTimeout(running.timer);
    const { pending } = running;
    running = undefined;
    pending.signal?.removeEventListener("abort", pending.onAbort);
    settle(pending);
    next();
  }

  function next(): void {
    if (running !== undefined || closed) return;
    const pending = waiting.shift();
    if (pending === undefined) return;
    thread ??= start();
    running = { pending, timer: undefined };
    if (thread.ready) arm(running);
    thread.worker.postMessage(pending.request);
  }

  return {
    check(code, declarations, signal) {
      if (closed)
        return Promise.reject(new TypeCheckUnavailableError("the type checker is closed"));
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (waiting.length >= maxWaiting) {
        return Promise.reject(
          new TypeCheckUnavailableError(
            `the type checker is busy (${waiting.length} checks waiting); try again shortly`,
          ),
        );
      }
      return new Promise((resolve, reject) => {
        const pending: Pending = {
          request: { id: nextId++, code, declarations },
          resolve,
          reject,
          signal,
          onAbort: () => {
            // Only a check still waiting leaves the line; a running one finishes.
            const at = waiting.indexOf(pending);
            if (at === -1) return;
            waiting.splice(at, 1);
            reject(signal?.reason);
          },
        };
        signal?.addEventListener("abort", pending.onAbort, { once: true });
        waiting.push(pending);
        next();
      });
    },
    async close() {
      closed = true;
      const ending = thread;
      thread = undefined;
      const error = new TypeCheckUnavailableError("the type checker is closed");
      finish((pending) => pending.reject(error));
      for (const pending of waiting.splice(0)) {
        pending.signal?.removeEventListener("abort", pending.onAbort);
        pending.reject(error);
      }
      await ending?.worker.terminate();
    },
  };
}
