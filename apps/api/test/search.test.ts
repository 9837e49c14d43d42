// Tool search and result shaping, on their own: ranking over names, descriptions and parameter
// names, and cutting text into pages that join back into the whole.
import { buildCatalog, type Tool } from "@turtle/bindings";
import { describe, expect, it } from "vitest";
import { ToolIndex } from "../src/catalog/search.ts";
import { page } from "../src/mcp/shaping.ts";

const tool = (name: string, description: string, properties: Record<string, unknown> = {}) =>
  ({
    name,
    description,
    inputSchema: { type: "object", properties, required: Object.keys(properties).slice(0, 1) },
  }) as Tool;

const catalog = buildCatalog([
  {
    name: "github",
    tools: [
      tool("listIssues", "List issues of a repository.", { repo: {}, state: {} }),
      tool("create_pull_request", "Open a pull request.", { repo: {}, head: {}, base: {} }),
      tool("get_user", "A user's profile.", { login: {} }),
    ],
  },
  {
    name: "sheets",
    tools: [
      tool("read_rows", "Read rows of a spreadsheet.", { sheet: {}, offset: {}, limit: {} }),
      tool("append_row", "Append one row.", { sheet: {}, values: {} }),
    ],
  },
  {
    name: "billing",
    tools: [
      tool("list_invoices", "Invoices, newest first.", {
        status: { type: "string", enum: ["open", "paid", "overdue"] },
      }),
      tool("get_customer", "One customer.", { id: {} }),
    ],
  },
]);
const index = new ToolIndex(catalog);

describe("ToolIndex", () => {
  it("finds camelCase and snake_case names from plain words, plural or not", () => {
    expect(index.find("issue", { limit: 1 })[0]?.method.tool).toBe("listIssues");
    expect(index.find("pull requests", { limit: 1 })[0]?.method.tool).toBe("create_pull_request");
    expect(index.find("spreadsheet rows", { limit: 2 }).map((hit) => hit.method.tool)).toEqual([
      "read_rows",
      "append_row",
    ]);
  });

  it("answers a query of one very long word without fuzzy matching it", () => {
    expect(index.find("x".repeat(20_000), { limit: 5 })).toEqual([]);
  });

  it("matches the values a parameter takes", () => {
    expect(index.find("overdue", { limit: 1 })[0]?.method.tool).toBe("list_invoices");
  });

  it("matches parameter names, and keeps to the servers asked for", () => {
    expect(index.find("login", { limit: 1 })[0]?.method.tool).toBe("get_user");
    const scoped = index.find("repo", { limit: 10, servers: ["sheets"] });
    expect(scoped).toEqual([]);
  });

  it("lists tools in catalog order for a blank query", () => {
    const names = index
      .find("", { limit: 4 })
      .map((hit) => `${hit.namespace}.${hit.method.identifier}`);
    expect(names).toEqual([
      "github.listIssues",
      "github.create_pull_request",
      "github.get_user",
      "sheets.read_rows",
    ]);
  });

  it("renders names, summaries with parameters, or declarations", () => {
    const hits = index.find("read rows", { limit: 1 });
    expect(index.render(hits, "name")).toBe("sheets.read_rows");
    expect(index.render(hits, "summary")).toBe(
      "sheets.read_rows({ sheet, offset?, limit? }) — Read rows of a spreadsheet.",
    );
    const full = index.render(hits, "full");
    expect(full).toContain("declare namespace sheets {");
    expect(full).toContain("function read_rows(input: ReadRowsInput): Promise<any>;");
    expect(full).not.toContain("append_row");
    expect(full).not.toContain("declare const input");
  });
});

describe("page", () => {
  const next = { jobId: "j1", part: "result" as const };

  it("returns short text whole, without a marker", () => {
    expect(page("[1,2,3]", 0, 100, next)).toBe("[1,2,3]");
  });

  it("cuts long text with a marker naming the next offset, and pages join into the whole", () => {
    const text = "x".repeat(250);
    const first = page(text, 0, 100, next);
    expect(first).toBe(
      `${"x".repeat(100)}\n[cut: characters 0–100 of 250 shown. The next part: get_job {"id":"j1","part":"result","offset":100}; all of it: GET /v1/jobs/j1 (field result).]`,
    );
    const last = page(text, 200, 100, next);
    expect(last).toBe(`${"x".repeat(50)}\n[cut: characters 200–250 of 250 shown.]`);
  });

  it("never splits a surrogate pair", () => {
    const text = `${"a".repeat(9)}😀${"b".repeat(10)}`;
    const shown = page(text, 0, 10, next).split("\n")[0];
    expect(shown).toBe("a".repeat(9));
    expect(page(text, 0, 10, next)).toContain('"offset":9');
  });
});
