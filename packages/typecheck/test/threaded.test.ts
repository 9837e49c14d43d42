// The checker in a worker thread: the same results as in-process, in order, a deadline and a
// heap limit that end a check (and its thread) instead of letting it hold the caller, a bounded
// line, and failures of the checker kept apart from the program's type errors.
import { afterAll, describe, expect, it } from "vitest";
import { createThreadedTypeChecker, TypeCheckUnavailableError } from "../src/index.ts";

const DECLARATIONS = `declare namespace github {
  function get_issue(input: { repo: string; number: number }): Promise<{ title: string }>;
}
declare const input: any;
`;

/** Enough lines that checking them takes well over a millisecond on any machine. */
const LONG_PROGRAM = Array.from(
  { length: 400 },
  (_, i) => `const v${i} = await github.get_issue({ repo: "a/b", number: ${i} });`,
).join("\n");

const checker = createThreadedTypeChecker();
afterAll(() => checker.close());

describe("createThreadedTypeChecker", () => {
  it("checks in a worker thread, answering concurrent checks each with its own result", async () => {
    const [good, bad] = await Promise.all([
      checker.check(
        "const i = await github.get_issue({ repo: 'a/b', number: 1 });\nreturn i.title;",
        DECLARATIONS,
      ),
      checker.check("return github.get_issue({ repo: 'a/b', number: '1' });", DECLARATIONS),
    ]);
    expect(good).toEqual({ ok: true, diagnostics: [], truncated: false });
    expect(bad.ok).toBe(false);
    expect(bad.diagnostics).toEqual([expect.objectContaining({ line: 1, column: 40, code: 2322 })]);
  });

  it("stops a check that outlives its deadline, and starts a fresh thread for the next", async () => {
    const hasty = createThreadedTypeChecker({ timeoutMs: 1 });
    try {
      for (let i = 0; i < 2; i++) {
        const result = await hasty.check(LONG_PROGRAM, DECLARATIONS);
        expect(result.ok).toBe(false);
        expect(result.diagnostics[0]?.message).toMatch(
          /^Type-checking took longer than 1 ms, so it was stopped/,
        );
      }
    } finally {
      await hasty.close();
    }
  });

  it("stops a check that needs more memory than the thread may have", async () => {
    const small = createThreadedTypeChecker({ maxMemoryMb: 8 });
    try {
      const result = await small.check("return 1;", DECLARATIONS);
      expect(result.ok).toBe(false);
      expect(result.diagnostics[0]?.message).toMatch(
        /^Type-checking this program needed more than 8 MB, so it was stopped/,
      );
    } finally {
      await small.close();
    }
  });

  it("refuses checks past its line's bound as busy, and drops a waiting check whose caller left", async () => {
    const narrow = createThreadedTypeChecker({ maxWaiting: 1 });
    try {
      const running = narrow.check(LONG_PROGRAM, DECLARATIONS);
      const left = new AbortController();
      const waiting = narrow.check("return 1;", DECLARATIONS, left.signal);
      await expect(narrow.check("return 2;", DECLARATIONS)).rejects.toThrow(
        /^the type checker is busy \(1 checks waiting\)/,
      );
      left.abort(new Error("the client hung up"));
      await expect(waiting).rejects.toThrow("the client hung up");
      expect((await running).ok).toBe(true);
      expect((await narrow.check("return 3;", DECLARATIONS)).ok).toBe(true);
    } finally {
      await narrow.close();
    }
  });

  it("rejects checks after close as unavailable, not as the program's type errors", async () => {
    const closing = createThreadedTypeChecker();
    const pending = closing.check("return 1;", DECLARATIONS).catch((error: unknown) => error);
    await closing.close();
    expect(await pending).toBeInstanceOf(TypeCheckUnavailableError);
    await expect(closing.check("return 1;", DECLARATIONS)).rejects.toThrow(
      "the type checker is closed",
    );
  });
});
