/**
 * The one bounded wait of the suite: polls until a check holds, or fails at a deadline with
 * what it waited for. Nothing to tear down.
 */
import { vi } from "vitest";

/**
 * Polls `check` (every 25 ms) until it returns something other than undefined and returns that;
 * a check that throws (an `expect` that does not hold yet) is tried again too. At the deadline
 * it fails with `what` and the check's last error.
 */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  deadlineMs = 30_000,
): Promise<T> {
  let last: unknown;
  try {
    return await vi.waitFor(
      async () => {
        try {
          const value = await check();
          if (value !== undefined) return value;
          last = undefined;
        } catch (error) {
          last = error;
        }
        throw new Error(`still waiting for ${what}`);
      },
      { timeout: deadlineMs, interval: 25 },
    );
  } catch {
    const why = last instanceof Error ? `: ${last.message}` : "";
    throw new Error(`timed out waiting for ${what}${why}`, { cause: last });
  }
}
