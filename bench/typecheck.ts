import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { buildCatalog, renderDeclarations } from "@turtle/bindings";
import {
  type CheckResult,
  createThreadedTypeChecker,
  createTypeChecker,
  SANDBOX_GLOBALS,
} from "@turtle/typecheck";
import ts from "typescript";
import type { Figure } from "./measure.ts";

/**
 * Type-checking a 50-line program against the declarations of 100 tools, before it is queued:
 * the first check of the process (standard library parsed and bound), then warm checks, beside
 * the same check done the obvious way (a fresh default compiler host each time, which parses
 * the standard library again) and a bare `ts.transpileModule` of the program (no types at all).
 */
export async function benchTypecheck(): Promise<Figure[]> {
  const time = (fn: () => unknown) => {
    const started = performance.now();
    fn();
    return performance.now() - started;
  };
  const checker = createTypeChecker();
  // The first check of the process also parses and binds the standard library (unless a suite
  // before this one type-checked already).
  let result: CheckResult | undefined;
  const cold = time(() => {
    result = checker.check(PROGRAM, declarations);
  });
  if (result?.ok !== true)
    throw new Error(`the bench program should pass: ${JSON.stringify(result)}`);

  for (let i = 0; i < 50; i++) checker.check(PROGRAM, declarations);
  const warm = Array.from({ length: 200 }, () => time(() => checker.check(PROGRAM, declarations)));
  // Two catalogs in turn (two agents' jobs, say): each keeps its parsed declarations.
  const other = declarations.replace("The Turtle program API", "The program API");
  const alternating = Array.from({ length: 200 }, (_, i) =>
    time(() => checker.check(PROGRAM, i % 2 === 0 ? declarations : other)),
  );
  const uncached = Array.from({ length: 15 }, () => time(() => checkUncached(PROGRAM)));
  // The API's way: the same checker in a worker thread, the program and declarations sent to it.
  const threaded = createThreadedTypeChecker();
  const viaThread: number[] = [];
  try {
    for (let i = 0; i < 250; i++) {
      const started = performance.now();
      const checked = await threaded.check(PROGRAM, declarations);
      if (!checked.ok) throw new Error(`threaded check failed: ${JSON.stringify(checked)}`);
      if (i >= 50) viaThread.push(performance.now() - started);
    }
  } finally {
    await threaded.close();
  }
  const transpile = Array.from({ length: 200 }, () =>
    time(() => ts.transpileModule(PROGRAM_WRAPPED, { compilerOptions: OPTIONS })),
  );

  const baseline = { name: "the same check, uncached (p50)", value: percentile(uncached, 0.5) };
  return [
    {
      name: `type check, 50 lines vs ${TOOLS} tools, warm (p50)`,
      unit: "ms",
      value: percentile(warm, 0.5),
      baseline,
      target: { kind: "max", value: 50 },
    },
    {
      name: `type check, 50 lines vs ${TOOLS} tools, warm (p95)`,
      unit: "ms",
      value: percentile(warm, 0.95),
      baseline,
      target: { kind: "info", value: 0 },
    },
    {
      name: `type check, 50 lines vs ${TOOLS} tools, warm, in a worker thread as the API does (p50)`,
      unit: "ms",
      value: percentile(viaThread, 0.5),
      baseline,
      target: { kind: "max", value: 50 },
    },
    {
      name: `type check, 50 lines vs ${TOOLS} tools, two declaration sets in turn (p50)`,
      unit: "ms",
      value: percentile(alternating, 0.5),
      baseline,
      target: { kind: "info", value: 0 },
    },
    {
      name: `type check, 50 lines vs ${TOOLS} tools, first of the process (cold)`,
      unit: "ms",
      value: cold,
      baseline,
      target: { kind: "info", value: 0 },
    },
    {
      name: "ts.transpileModule of the same program (p50)",
      unit: "ms",
      value: percentile(transpile, 0.5),
      baseline: null,
      target: { kind: "info", value: 0 },
    },
  ];
}

function percentile(values: number[], rank: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(rank * sorted.length))] ?? Number.NaN;
}

// ---- the obvious implementation, as the baseline ----------------------------------------------

const OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2024,
  lib: ["lib.es2024.d.ts"],
  types: [],
  strict: true,
  noImplicitAny: false,
  useUnknownInCatchVariables: false,
  noEmit: true,
  skipLibCheck: true,
};

function checkUncached(program: string): readonly ts.Diagnostic[] {
  const files: Record<string, string> = {
    "/globals.d.ts": SANDBOX_GLOBALS,
    "/declarations.d.ts": declarations,
    "/program.ts": `(async function (): Promise<any> {\n${program}\n});\n`,
  };
  const host = ts.createCompilerHost(OPTIONS);
  const { getSourceFile } = host;
  host.getSourceFile = (name, language, ...rest) => {
    const text = files[name];
    return text === undefined
      ? getSourceFile.call(host, name, language, ...rest)
      : ts.createSourceFile(name, text, language);
  };
  const built = ts.createProgram(Object.keys(files), OPTIONS, host);
  const file = built.getSourceFile("/program.ts");
  return [...built.getSyntacticDiagnostics(file), ...built.getSemanticDiagnostics(file)];
}

// ---- 100 tools and a program that uses some of them ------------------------------------------

const SERVERS = ["crm", "tickets", "warehouse", "mailer"];
const TOOLS_PER_SERVER = 25;
const TOOLS = SERVERS.length * TOOLS_PER_SERVER;

/** Four tool shapes in turn: a search, a fetch by id, a nested create, an update with enums. */
function tool(server: string, i: number): Tool {
  const name = ["search", "get", "create", "update"][i % 4];
  const noun = `${server}-record-${i >> 2}`;
  const address = {
    type: "object" as const,
    properties: {
      street: { type: "string" },
      city: { type: "string" },
      country: { type: "string", description: "ISO 3166 alpha-2" },
    },
    required: ["city", "country"],
  };
  const record = {
    type: "object" as const,
    properties: {
      id: { type: "string" },
      name: { type: "string" },
      score: { type: "number" },
      tags: { type: "array", items: { type: "string" } },
      address,
    },
    required: ["id", "name"],
  };
  const schemas: Record<string, Pick<Tool, "inputSchema" | "outputSchema">> = {
    search: {
      inputSchema: {
        type: "object",
        properties: {
          query: { type: "string", description: "Free text" },
          limit: { type: "integer", minimum: 1, maximum: 100 },
          cursor: { type: ["string", "null"] },
        },
        required: ["query"],
      },
      outputSchema: {
        type: "object",
        properties: {
          items: { type: "array", items: record },
          next: { type: ["string", "null"] },
        },
        required: ["items"],
      },
    },
    get: {
      inputSchema: {
        type: "object",
        properties: { id: { type: "string" } },
        required: ["id"],
      },
      outputSchema: record,
    },
    create: {
      inputSchema: {
        type: "object",
        properties: {
          name: { type: "string" },
          address,
          tags: { type: "array", items: { type: "string" } },
        },
        required: ["name"],
      },
    },
    update: {
      inputSchema: {
        type: "object",
        properties: {
          id: { type: "string" },
          status: { enum: ["open", "pending", "closed"] },
          fields: { type: "object", additionalProperties: { type: "string" } },
        },
        required: ["id", "status"],
      },
    },
  };
  return {
    name: `${name}-${noun}`,
    description: `${name} a ${noun}.\nReturns what the server answered.`,
    ...(schemas[name ?? "get"] as Pick<Tool, "inputSchema" | "outputSchema">),
  };
}

const declarations = renderDeclarations(
  buildCatalog(
    SERVERS.map((server) => ({
      name: server,
      tools: Array.from({ length: TOOLS_PER_SERVER }, (_, i) => tool(server, i)),
    })),
  ),
);

/** 50 lines in the style an LLM writes: fan-out, retries, a join, logs, a JSON result. */
const PROGRAM = `const query: string = input.query ?? "overdue";
const limit = Math.min(Number(input.limit ?? 20), 100);
console.log("searching for", query);
const found = await crm.search_crm_record_0({ query, limit });
const ids = found.items.map((item) => item.id);
if (ids.length === 0) return { query, matches: [] };

async function withRetry<T>(label: string, call: () => Promise<T>): Promise<T | null> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (error instanceof ToolError) {
        console.warn(label, "failed on", error.server, error.tool, error.message);
      } else {
        throw error;
      }
    }
  }
  return null;
}

const records = await Promise.all(
  ids.map((id) => withRetry(id, () => crm.get_crm_record_1({ id }))),
);
const byCity = new Map<string, string[]>();
for (const record of records) {
  if (record === null) continue;
  const city = record.address?.city ?? "unknown";
  const names = byCity.get(city) ?? [];
  names.push(record.name);
  byCity.set(city, names);
}

const queue = await tickets.search_tickets_record_0({ query: \`city:\${[...byCity.keys()][0]}\` });
for (const ticket of queue.items.slice(0, 5)) {
  await tickets.update_tickets_record_0({ id: ticket.id, status: "pending" });
}

const created = await warehouse.create_warehouse_record_0({
  name: "restock",
  address: { city: "Lyon", country: "FR" },
  tags: ticketTags(queue.items),
});
function ticketTags(items: Array<{ tags?: string[] }>) {
  return [...new Set(items.flatMap((item) => item.tags ?? []))].sort();
}
await mailer.create_mailer_record_0({ name: \`report for \${query}\` });
console.info("done", records.length, "records");
return { query, cities: Object.fromEntries(byCity), created, tickets: queue.items.length };
`;

const PROGRAM_WRAPPED = `(async function () {\n${PROGRAM}\n});\n`;
