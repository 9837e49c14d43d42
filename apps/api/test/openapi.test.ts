// The OpenAPI document the API serves is what client generators read: each operation needs an
// operationId, unique in the document, or the generated client names its methods from paths.
import { it } from "@turtle/test-support";
import { describe, expect } from "vitest";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

interface Operation {
  operationId?: unknown;
}

describe("the OpenAPI document", () => {
  it("names every operation with its own camelCase operationId", async ({ api }) => {
    const response = await api.app.inject({ method: "GET", url: "/openapi.json" });
    expect(response.statusCode).toBe(200);
    const paths = response.json().paths as Record<string, Partial<Record<string, Operation>>>;
    const operations = Object.entries(paths).flatMap(([path, item]) =>
      METHODS.flatMap((method) => {
        const operation = item[method];
        return operation === undefined
          ? []
          : [{ at: `${method.toUpperCase()} ${path}`, operation }];
      }),
    );
    // Every route of the API is there, so the checks below cover them all.
    expect(operations.length).toBeGreaterThan(30);

    const unnamed = operations.filter(({ operation }) => operation.operationId === undefined);
    expect(unnamed.map(({ at }) => at)).toEqual([]);

    const byId = new Map<string, string[]>();
    for (const { at, operation } of operations) {
      const id = String(operation.operationId);
      byId.set(id, [...(byId.get(id) ?? []), at]);
    }
    const shared = [...byId].filter(([, ats]) => ats.length > 1);
    expect(shared).toEqual([]);

    const malformed = [...byId.keys()].filter((id) => !/^[a-z]+(?:[A-Z][a-z0-9]*)+$/.test(id));
    expect(malformed).toEqual([]);
  });
});
