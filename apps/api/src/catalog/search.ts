// Ranked search over a catalog's tools, for agents that discover the program API a piece at a
// time instead of reading every declaration. Full-text (BM25 with prefix and fuzzy matching, by
// MiniSearch) over each tool's name, its server, its description and its parameters (names and
// enum values).
import { type Catalog, type CatalogMethod, renderDeclarations } from "@turtle/bindings";
import MiniSearch from "minisearch";

export type SearchDetail = "name" | "summary" | "full";

export interface ToolHit {
  /** The namespace and method a program calls: `namespace.method(...)`. */
  namespace: string;
  server: string;
  method: CatalogMethod;
  score: number;
}

interface Doc {
  id: number;
  name: string;
  server: string;
  description: string;
  params: string;
}

/** Splits `listOpenIssues`, `list_open-issues` and `ListOpenIssues` into the same words. */
function tokenize(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((word) => word !== "");
}

const FUZZY_MAX_LENGTH = 24;

const STOP_WORDS = new Set(["a", "an", "the", "of", "to", "and", "or", "for", "in", "on", "by"]);

/** Singular and plural meet ("tickets" finds "ticket"); stop words carry no signal. */
function processTerm(term: string): string | null {
  if (STOP_WORDS.has(term)) return null;
  if (term.length > 3 && term.endsWith("ies")) return `${term.slice(0, -3)}y`;
  if (term.length > 3 && term.endsWith("s") && !term.endsWith("ss")) return term.slice(0, -1);
  return term;
}

/**
 * What a tool's parameters say: their names and the values of their enums (a `status` taking
 * "overdue" is how a tool lists overdue invoices). Their descriptions are left out: they repeat
 * the names ("The ticket's ID.") and measured worse, ranking a tool that merely takes an id over
 * the one the words describe.
 */
function parameterTerms(schema: unknown): string[] {
  const terms: string[] = [];
  const visit = (node: unknown, depth: number) => {
    if (depth > 3 || node === null || typeof node !== "object") return;
    const { properties, items } = node as { properties?: unknown; items?: unknown };
    visit(items, depth + 1);
    if (properties === null || typeof properties !== "object") return;
    for (const [name, child] of Object.entries(properties)) {
      terms.push(name);
      const values = (child as { enum?: unknown } | null)?.enum;
      if (Array.isArray(values)) {
        for (const value of values) if (typeof value === "string") terms.push(value);
      }
      visit(child, depth + 1);
    }
  };
  visit(schema, 0);
  return terms;
}

export class ToolIndex {
  readonly size: number;
  private readonly hits: Omit<ToolHit, "score">[] = [];
  private readonly search: MiniSearch<Doc>;

  constructor(catalog: Catalog) {
    this.search = new MiniSearch<Doc>({
      fields: ["name", "server", "description", "params"],
      tokenize,
      processTerm,
      searchOptions: {
        boost: { name: 3, server: 1.5, params: 1.5, description: 1 },
        prefix: true,
        // Fuzzy matching costs time with the square of a word's length: long words match exactly.
        fuzzy: (term: string) => (term.length <= FUZZY_MAX_LENGTH ? 0.2 : false),
        combineWith: "OR",
      },
    });
    const docs: Doc[] = [];
    for (const namespace of catalog.namespaces) {
      for (const method of namespace.methods) {
        const id = this.hits.length;
        this.hits.push({ namespace: namespace.identifier, server: namespace.server, method });
        docs.push({
          id,
          name: `${method.tool} ${method.identifier}`,
          server: `${namespace.server} ${namespace.identifier}`,
          description: method.description ?? "",
          params: parameterTerms(method.inputSchema).join(" "),
        });
      }
    }
    this.search.addAll(docs);
    this.size = docs.length;
  }

  /**
   * The best `limit` tools for `query`, best first; of `servers` only when given. A blank query
   * lists tools in catalog order, so an agent can also browse.
   */
  find(query: string, options: { servers?: readonly string[]; limit: number }): ToolHit[] {
    const allowed = options.servers ? new Set(options.servers) : undefined;
    const inScope = (hit: Omit<ToolHit, "score">) => !allowed || allowed.has(hit.server);
    if (query.trim() === "" || query.trim() === "*") {
      return this.hits
        .filter(inScope)
        .slice(0, options.limit)
        .map((hit) => ({ ...hit, score: 0 }));
    }
    const found: ToolHit[] = [];
    for (const result of this.search.search(query)) {
      const hit = this.hits[result.id as number];
      if (hit === undefined || !inScope(hit)) continue;
      found.push({ ...hit, score: result.score });
      if (found.length >= options.limit) break;
    }
    return found;
  }

  /** Hits as text for an LLM, at the detail asked for. */
  render(hits: ToolHit[], detail: SearchDetail): string {
    if (detail === "full") {
      const byNamespace = new Map<string, { server: string; methods: CatalogMethod[] }>();
      for (const hit of hits) {
        const entry = byNamespace.get(hit.namespace) ?? { server: hit.server, methods: [] };
        entry.methods.push(hit.method);
        byNamespace.set(hit.namespace, entry);
      }
      const subset: Catalog = {
        namespaces: [...byNamespace].map(([identifier, { server, methods }]) => ({
          identifier,
          server,
          methods,
        })),
      };
      return renderDeclarations(subset, { header: false });
    }
    return hits
      .map((hit) => {
        const name = `${hit.namespace}.${hit.method.identifier}`;
        if (detail === "name") return name;
        const params = signatureParams(hit.method.inputSchema);
        const summary = firstSentence(hit.method.description ?? "");
        return `${name}(${params})${summary === "" ? "" : ` — ${summary}`}`;
      })
      .join("\n");
  }
}

/** `{ repo, state?, limit? }`: the input's top-level names, optional ones marked. */
function signatureParams(schema: unknown): string {
  if (schema === null || typeof schema !== "object") return "";
  const { properties, required } = schema as { properties?: unknown; required?: unknown };
  if (properties === null || typeof properties !== "object") return "";
  const needed = new Set(Array.isArray(required) ? required : []);
  const names = Object.keys(properties).map((name) => (needed.has(name) ? name : `${name}?`));
  return names.length === 0 ? "" : `{ ${names.join(", ")} }`;
}

function firstSentence(text: string): string {
  const line = text.trim().split(/\r?\n/)[0] ?? "";
  const end = line.search(/[.!?](\s|$)/);
  const sentence = end === -1 ? line : line.slice(0, end + 1);
  return sentence.length > 160 ? `${sentence.slice(0, 157)}…` : sentence;
}
