import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isUuid, UUID_PATTERN } from "../src/index.ts";

describe("isUuid", () => {
  it("takes a UUID in either case, of any version", () => {
    const id = randomUUID();
    expect(isUuid(id)).toBe(true);
    expect(isUuid(id.toUpperCase())).toBe(true);
    expect(isUuid("00000000-0000-4000-8000-000000000001")).toBe(true);
    expect(isUuid("00000000-0000-0000-0000-000000000000")).toBe(true);
  });

  it("refuses anything else, a UUID inside a longer text included", () => {
    for (const text of ["", "nope", "1", "%00", `${randomUUID()}x`, ` ${randomUUID()}`]) {
      expect(isUuid(text)).toBe(false);
    }
    expect(isUuid(randomUUID().replaceAll("-", ""))).toBe(false);
  });

  it("builds into a longer pattern", () => {
    const id = randomUUID();
    const path = new RegExp(`^/v1/jobs/(${UUID_PATTERN})(?:[/?]|$)`, "i");
    expect(path.exec(`/v1/jobs/${id}/steps`)?.[1]).toBe(id);
    expect(path.exec(`/v1/jobs/${id}x`)).toBeNull();
  });
});
