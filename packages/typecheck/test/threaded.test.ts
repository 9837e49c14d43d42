// The checker in a worker thread: the same results as in-process, in order, and a deadline that
// ends a check (and its thread) instead of letting it hold the caller.
import { afterAll, describe, expect, it } from "vitest";
import { createThreadedTypeChecker } from "../src/index.ts";

const DECLARATIONS = `declare namespace github {
  function get_issue(input: { repo: string; number: number }): Promise<{ title: string }>;
}
declare const input: any;
`;

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
        const result = await hasty.check("return 1;", DECLARATIONS);
        expect(result.ok).toBe(false);
        expect(result.diagnostics[0]?.message).toMatch(
          /^Type-checking took longer than 1 ms, so it was stopped/,
        );
      }
    } finally {
      await hasty.close();
    }
  });

  it("answers checks after close with a diagnostic instead of hanging", async () => {
    const closing = createThreadedTypeChecker();
    const pending = closing.check("return 1;", DECLARATIONS);
    await closing.close();
    expect((await pending).diagnostics[0]?.message).toBe("The type checker is closed.");
    expect((await closing.check("return 1;", DECLARATIONS)).ok).toBe(false);
  });
});
