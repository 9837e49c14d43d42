import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { buildCatalog, renderDeclarations } from "@turtle/bindings";
import type { Figure } from "./measure.ts";

/**
 * Declarations for 1,000 tools of realistic shape (nested objects, enums, unions, arrays,
 * `$defs` with a cycle, descriptions, output schemas), beside serializing the same tool list as
 * JSON — the least any consumer of the schemas does.
 */
export async function benchDeclarations(): Promise<Figure[]> {
  const time = (fn: () => unknown) => {
    const started = performance.now();
    fn();
    return performance.now() - started;
  };
  const render = () => renderDeclarations(buildCatalog(servers));
  const serialize = () => JSON.stringify(servers);
  const cold = time(render);
  const warm: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < 21; i++) {
    warm.push(time(render));
    baseline.push(time(serialize));
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? 0;
  const json = { name: "JSON.stringify of the tool list", value: median(baseline) };
  return [
    {
      name: `declarations for ${SERVERS * TOOLS_PER_SERVER} tools (median)`,
      unit: "ms",
      value: median(warm),
      baseline: json,
      target: { kind: "max", value: 200 },
    },
    {
      name: `declarations for ${SERVERS * TOOLS_PER_SERVER} tools (first, cold JIT)`,
      unit: "ms",
      value: cold,
      baseline: json,
      target: { kind: "max", value: 200 },
    },
  ];
}

const SERVERS = 10;
const TOOLS_PER_SERVER = 100;

function tool(i: number): Tool {
  return {
    name: `tool-${i}`,
    description: `Does thing number ${i}.\nReturns what it found.`,
    inputSchema: {
      type: "object",
      properties: {
        query: { type: "string", description: "What to look for", minLength: 1 },
        limit: { type: "integer", default: 10, description: "At most this many" },
        mode: { type: "string", enum: ["fast", "thorough", "cached"] },
        since: { type: ["string", "null"], format: "date-time" },
        filters: {
          type: "array",
          items: {
            type: "object",
            properties: {
              field: { type: "string" },
              op: { enum: ["eq", "ne", "lt", "gt"] },
              value: { anyOf: [{ type: "string" }, { type: "number" }, { type: "boolean" }] },
            },
            required: ["field", "op", "value"],
          },
        },
        labels: { type: "object", additionalProperties: { type: "string" } },
        tree: { $ref: "#/$defs/Node" },
      },
      required: ["query"],
      $defs: {
        Node: {
          type: "object",
          properties: {
            id: { type: "string" },
            children: { type: "array", items: { $ref: "#/$defs/Node" } },
          },
          required: ["id"],
        },
      },
    },
    outputSchema: {
      type: "object",
      properties: {
        items: { type: "array", items: { type: "object", additionalProperties: true } },
        total: { type: "integer" },
      },
      required: ["items", "total"],
    },
  };
}

const servers = Array.from({ length: SERVERS }, (_, s) => ({
  name: `server-${s}`,
  tools: Array.from({ length: TOOLS_PER_SERVER }, (_, t) => tool(s * TOOLS_PER_SERVER + t)),
}));
