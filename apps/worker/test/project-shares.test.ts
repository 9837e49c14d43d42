// The bookkeeping of fair shares on one worker, with the queue's head played by a list.
import { describe, expect, it } from "vitest";
import { ProjectShares, type ReleaseShare } from "../src/project-shares.ts";

function shares(head: () => Array<string | undefined> = () => [], slots = 4) {
  return new ProjectShares({
    perProject: 2,
    slots,
    waitMs: 600_000,
    peekMs: 5,
    peek: async () => head(),
  });
}

describe("ProjectShares", () => {
  it("runs a project's jobs up to its share, then the next when one ends, in order", async () => {
    const worker = shares();
    const first = await worker.acquire("a");
    const second = await worker.acquire("a");
    expect(worker.runs("a")).toBe(2);
    const order: string[] = [];
    const third = worker.acquire("a").then((share) => {
      order.push("third");
      return share;
    });
    const fourth = worker.acquire("a").then((share) => {
      order.push("fourth");
      return share;
    });
    expect(worker.waiting).toBe(2);
    // Another project is not held back by a's jobs waiting.
    expect(await worker.acquire("b")).toBeTypeOf("function");
    first?.();
    first?.();
    const granted = (await third) as ReleaseShare;
    expect(granted).toBeTypeOf("function");
    expect(worker.runs("a")).toBe(2);
    second?.();
    expect(await fourth).toBeTypeOf("function");
    expect(order).toEqual(["third", "fourth"]);
    worker.close();
  });

  it("gives a waiting job back when another project's job waits at the queue's head", async () => {
    let head: Array<string | undefined> = ["a", "a"];
    let peeked!: () => void;
    const twice = new Promise<void>((resolve) => {
      peeked = resolve;
    });
    let peeks = 0;
    const worker = shares(() => {
      if (++peeks === 2) peeked();
      return head;
    }, 3);
    await worker.acquire("a");
    await worker.acquire("a");
    const waiting = worker.acquire("a");
    // Only a's entries in the queue: the job waits here for a's share, however often it looks.
    await twice;
    expect(worker.waiting).toBe(1);
    head = ["a", "b"];
    expect(await waiting).toBeNull();
    expect(worker.waiting).toBe(0);
    worker.close();
  });

  it("gives every waiting job back when it closes, and takes no more", async () => {
    const worker = shares();
    await worker.acquire("a");
    await worker.acquire("a");
    const waiting = worker.acquire("a");
    worker.close();
    expect(await waiting).toBeNull();
    expect(await worker.acquire("b")).toBeNull();
  });

  it("runs an entry that names no project unshared", async () => {
    const worker = shares();
    for (let i = 0; i < 5; i++) expect(await worker.acquire(undefined)).toBeTypeOf("function");
    worker.close();
  });
});

describe("ProjectShares and the entry's queue lock", () => {
  it("stops a job waiting for its share at once when the worker loses the entry's lock", async () => {
    const worker = shares();
    await worker.acquire("a");
    await worker.acquire("a");
    const lost = new AbortController();
    const waiting = worker.acquire("a", lost.signal);
    expect(worker.waiting).toBe(1);
    lost.abort();
    expect(await waiting).toBeNull();
    expect(worker.waiting).toBe(0);
    expect(await worker.acquire("b", lost.signal)).toBeNull();
    worker.close();
  });
});
