// Type-checking off the caller's thread, with a deadline. A check is CPU-bound for milliseconds
// (and type-level code can make it take seconds), so a server checking programs from untrusted
// clients runs the checker in a worker thread: its event loop stays free, and a check that
// outlives its deadline is ended by ending the thread (a fresh one takes the next check).
import { Worker } from "node:worker_threads";
import type { CheckRequest } from "./check-thread.ts";
import type { CheckResult } from "./type-checker.ts";

export interface ThreadedTypeChecker {
  /** Resolves with the check, or with one diagnostic saying it ran out of time; never rejects. */
  check(code: string, declarations: string): Promise<CheckResult>;
  /** Ends the thread; checks still waiting resolve with a diagnostic saying so. */
  close(): Promise<void>;
}

export interface ThreadedTypeCheckerOptions {
  /** Longest one check may run, in ms (default 10 s). Its wait in line does not count. */
  timeoutMs?: number;
}

interface Pending {
  request: CheckRequest;
  resolve: (result: CheckResult) => void;
}

const failed = (message: string): CheckResult => ({
  ok: false,
  truncated: false,
  diagnostics: [{ line: 1, column: 1, endLine: 1, endColumn: 1, code: 0, message }],
});

export function createThreadedTypeChecker(
  options: ThreadedTypeCheckerOptions = {},
): ThreadedTypeChecker {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const waiting: Pending[] = [];
  let running: { pending: Pending; timer: NodeJS.Timeout } | undefined;
  let worker: Worker | undefined;
  let nextId = 1;
  let closed = false;

  function start(): Worker {
    const thread = new Worker(new URL("./check-thread.ts", import.meta.url));
    // A thread waiting for work does not keep the process alive.
    thread.unref();
    thread.on("message", (message: { id: number; result: CheckResult }) => {
      if (running?.pending.request.id !== message.id) return;
      finish(message.result);
    });
    thread.on("error", (error) => {
      if (worker === thread) worker = undefined;
      finish(failed(`The type checker failed: ${error.message}`));
    });
    thread.on("exit", () => {
      if (worker !== thread) return;
      worker = undefined;
      finish(failed("The type checker stopped unexpectedly; try again."));
    });
    return thread;
  }

  function finish(result: CheckResult): void {
    if (running === undefined) return;
    clearTimeout(running.timer);
    const { resolve } = running.pending;
    running = undefined;
    resolve(result);
    next();
  }

  function next(): void {
    if (running !== undefined || closed) return;
    const pending = waiting.shift();
    if (pending === undefined) return;
    worker ??= start();
    const thread = worker;
    const timer = setTimeout(() => {
      worker = undefined;
      thread.terminate().catch(() => {});
      finish(
        failed(
          `Type-checking took longer than ${timeoutMs} ms, so it was stopped: simplify the program's types, or run it without the check.`,
        ),
      );
    }, timeoutMs);
    running = { pending, timer };
    thread.postMessage(pending.request);
  }

  return {
    check(code, declarations) {
      if (closed) return Promise.resolve(failed("The type checker is closed."));
      return new Promise((resolve) => {
        waiting.push({ request: { id: nextId++, code, declarations }, resolve });
        next();
      });
    },
    async close() {
      closed = true;
      const thread = worker;
      worker = undefined;
      if (running !== undefined) finish(failed("The type checker is closed."));
      for (const pending of waiting.splice(0))
        pending.resolve(failed("The type checker is closed."));
      await thread?.terminate();
    },
  };
}
