// A tool's bad answer (too large, not JSON-RPC) fails only its own call, once: the other calls
// in flight on the same connection succeed, each executed once, and the server lives on.

import { dirname } from "node:path";
import { CONTROL_SERVER, controlServer, rejection, SLOW } from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClientPool, createClientPool, type StdioSandbox, ToolError } from "../src/index.ts";

interface Stats {
  pid: number;
  byTool: Record<string, number>;
}

const MB = 1024 * 1024;
const LIMIT = 8 * MB;

const pools: ClientPool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

// Both ways a stdio server runs: the SDK's transport, and bubblewrap's (the production default),
// which reads through the same capped buffer. The confined server sees the tests' servers only.
const SANDBOXES: Array<[string, StdioSandbox]> = [
  ["unconfined", { kind: "none" }],
  ["confined", { kind: "bwrap", paths: [{ path: dirname(CONTROL_SERVER), writable: false }] }],
];
let sandbox: StdioSandbox = { kind: "none" };

function controlPool() {
  const dropped: string[] = [];
  const pool = createClientPool(
    { control: controlServer() },
    {
      sandbox,
      maxMessageBytes: LIMIT,
      onProtocolError: (_server, error) => dropped.push(error.message),
    },
  );
  pools.push(pool);
  return { pool, dropped };
}

/**
 * Makes `bad` on a fresh server while ten neighbour calls (`sleep`, long enough to be in flight
 * when the bad answer arrives) run on the same connection; returns what each side got.
 */
async function withNeighbours(bad: (pool: ClientPool) => Promise<unknown>) {
  const { pool, dropped } = controlPool();
  const before = (await pool.callTool("control", "stats", {})) as Stats;
  const neighbours = Array.from({ length: 10 }, (_, n) =>
    pool.callTool("control", "sleep", { ms: 400 + n }),
  );
  const error = await rejection(bad(pool));
  const results = await Promise.allSettled(neighbours);
  const after = (await pool.callTool("control", "stats", {})) as Stats;
  return { error, results, before, after, dropped };
}

describe.each(SANDBOXES)(
  "a bad answer on a shared connection, %s",
  { timeout: SLOW },
  (_, chosen) => {
    beforeAll(() => {
      sandbox = chosen;
    });

    it("fails a 12 MB answer alone, naming its size and the limit", async () => {
      const { error, results, before, after } = await withNeighbours((pool) =>
        pool.callTool("control", "big", { bytes: 12 * MB }),
      );
      expect(error).toBeInstanceOf(ToolError);
      expect(error).toMatchObject({ code: "result_too_large", server: "control", tool: "big" });
      expect(error.message).toMatch(/answered with 1258\d{4} bytes, over the 8388608-byte limit/);
      expect(results.map((result) => result.status)).toEqual(Array(10).fill("fulfilled"));
      // The same process answered throughout, and ran each call once.
      expect(after.pid).toBe(before.pid);
      expect(after.byTool).toMatchObject({ big: 1, sleep: 10 });
    });

    it("reads a 300 MB answer no further than the limit holds in memory", async () => {
      const rss = process.memoryUsage().rss;
      let peak = rss;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 5);
      try {
        const { error, results, before, after } = await withNeighbours((pool) =>
          pool.callTool("control", "big", { bytes: 300 * MB, raw: true }),
        );
        expect(error).toMatchObject({ code: "result_too_large", tool: "big" });
        expect(error.message).toMatch(/answered with 3145\d{5} bytes, over the 8388608-byte limit/);
        expect(results.map((result) => result.status)).toEqual(Array(10).fill("fulfilled"));
        expect(after.pid).toBe(before.pid);
        expect(after.byTool).toMatchObject({ big: 1, sleep: 10 });
      } finally {
        clearInterval(sampler);
      }
      const growthMb = (peak - rss) / MB;
      console.log(`300 MB answer: peak RSS growth ${growthMb.toFixed(1)} MB`);
      // What the pipe and a few chunks in flight cost, not the answer.
      expect(growthMb).toBeLessThan(100);
    });

    it.each([
      ["broken JSON", "json", /not valid JSON-RPC \(.*JSON/],
      [
        "a result that is not an object",
        "shape",
        /not valid JSON-RPC \(its result is not an object\)/,
      ],
    ])("fails an answer that is %s alone", async (_, kind, message) => {
      const { error, results, before, after } = await withNeighbours((pool) =>
        pool.callTool("control", "malformed", { kind }),
      );
      expect(error).toMatchObject({
        code: "malformed_result",
        server: "control",
        tool: "malformed",
      });
      expect(error.message).toMatch(message);
      expect(results.map((result) => result.status)).toEqual(Array(10).fill("fulfilled"));
      expect(after.pid).toBe(before.pid);
      expect(after.byTool).toMatchObject({ malformed: 1, sleep: 10 });
    });

    it("drops a line that answers no request, and the connection goes on", async () => {
      const { error, results, before, after, dropped } = await withNeighbours((pool) =>
        pool.callTool("control", "malformed", { kind: "noid" }, { timeoutMs: 1_000 }),
      );
      // Nothing answered this call: it ends at its own timeout.
      expect(error).toMatchObject({ code: "tool_error", tool: "malformed" });
      expect(error.message).toMatch(/timed out after 1000 ms/);
      expect(dropped).toEqual([expect.stringMatching(/dropped a line that is not JSON/)]);
      expect(results.map((result) => result.status)).toEqual(Array(10).fill("fulfilled"));
      expect(after.pid).toBe(before.pid);
    });

    it("bounds a call's timeout by its deadline", async () => {
      const { pool } = controlPool();
      const error = await rejection(
        pool.callTool("control", "sleep", { ms: 5_000 }, { deadline: Date.now() + 300 }),
      );
      expect(error).toMatchObject({ code: "tool_error" });
      expect(error.message).toMatch(/timed out after \d+ ms/);
    });
  },
);
