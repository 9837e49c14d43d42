// How long buildCatalog + renderDeclarations take for 1,000 tools of realistic shape (nested
// objects, enums, unions, arrays, $defs with a cycle, descriptions). Not a test: run it with
//   node packages/bindings/scripts/bench-declarations.ts
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { buildCatalog, renderDeclarations } from "../src/index.ts";

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

function once(): { ms: number; chars: number } {
  const start = performance.now();
  const text = renderDeclarations(buildCatalog(servers));
  return { ms: performance.now() - start, chars: text.length };
}

once(); // warm up the JIT, as a long-lived API process would be
const runs = Array.from({ length: 20 }, once).sort((a, b) => a.ms - b.ms);
const median = runs[Math.floor(runs.length / 2)];
const cold = runs.at(-1);
console.log(
  `${SERVERS * TOOLS_PER_SERVER} tools: median ${median?.ms.toFixed(1)} ms, ` +
    `slowest ${cold?.ms.toFixed(1)} ms, ${median?.chars} characters of declarations`,
);
