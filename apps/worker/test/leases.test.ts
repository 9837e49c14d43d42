import { describe, expect, it } from "vitest";
import { Leases } from "../src/leases.ts";

describe("a run's lease on its queue entry", () => {
  it("holds while its lock is younger than the lock duration, less a margin", () => {
    const leases = new Leases(10_000);
    const lost: string[] = [];
    const fresh = leases.take("a", Date.now(), () => lost.push("a"));
    // Taken 9.5 s ago: within 10 s, but inside the last tenth, where the run must stop.
    const late = leases.take("b", Date.now() - 9_500, () => lost.push("b"));
    expect(fresh.holds()).toBe(true);
    expect(late.holds()).toBe(false);
    expect(lost).toEqual(["b"]);
    // Lost for good: a renewal that comes back afterwards does not revive it.
    leases.renewed(["b"], performance.now(), 10_000);
    expect(late.holds()).toBe(false);
    fresh.release();
    late.release();
  });

  it("is extended by a renewal, as of when the renewal was asked for", () => {
    const leases = new Leases(10_000);
    const lost: string[] = [];
    const stalled = leases.take("a", Date.now() - 9_500, () => lost.push("a"));
    const renewed = leases.take("b", Date.now() - 9_500, () => lost.push("b"));
    // Asked 9 s ago and answered only now (Redis stalled in between): Redis may have set the
    // lock 9 s ago, so it proves nothing past now.
    leases.renewed(["a"], performance.now() - 9_000, 10_000);
    leases.renewed(["b"], performance.now(), 10_000);
    expect(stalled.holds()).toBe(false);
    expect(renewed.holds()).toBe(true);
    expect(lost).toEqual(["a"]);
    stalled.release();
    renewed.release();
  });

  it("is lost at once when Redis refuses to renew the lock, or the entry is taken again", () => {
    const leases = new Leases(10_000);
    const lost: string[] = [];
    const refused = leases.take("a", Date.now(), () => lost.push("a"));
    leases.refused(["a"]);
    expect(refused.holds()).toBe(false);
    const first = leases.take("b", Date.now(), () => lost.push("b first"));
    const second = leases.take("b", Date.now(), () => lost.push("b second"));
    expect(first.holds()).toBe(false);
    expect(second.holds()).toBe(true);
    // The first run ending does not end the second's lease.
    first.release();
    leases.refused(["b"]);
    expect(lost).toEqual(["a", "b first", "b second"]);
    refused.release();
    second.release();
  });
});
