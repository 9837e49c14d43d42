// The program API as TypeScript declarations: the text an agent puts in front of its LLM. It must
// be valid TypeScript (tests compile it) and compact (it costs context tokens), and one tool's
// unconvertible schema must not take the others down with it.
import type { Catalog, CatalogMethod, CatalogNamespace } from "./identifiers.ts";
import {
  createSchemaContext,
  createTypeNamer,
  declareType,
  hasNoRequiredProperties,
  isEmptyObjectSchema,
  jsdoc,
  pascalCase,
  SchemaConversionError,
} from "./schema-to-ts.ts";

const HEADER = `/**
 * The Turtle program API. A program is the body of an async function: \`await\` freely and
 * \`return\` a JSON value as the job's result. Each namespace below is an MCP server and each of
 * its functions a tool taking one input object. A failing tool throws a ToolError
 * { server, tool, message }: catch it to retry or skip.
 */
/** The job's JSON input. */
declare const input: any;
/** Thrown by a tool call that fails. */
interface ToolError extends Error {
  name: "ToolError";
  server: string;
  tool: string;
  /**
   * "tool_error": the tool failed; "result_too_large" / "malformed_result": its answer was too
   * long or not valid (the message says what); "server_unavailable": its server could not be
   * reached; "denied": a tool policy forbids the call; "rejected": a person rejected it.
   */
  code: string;
}`;

/**
 * The catalog as declarations. `header: false` leaves out the program contract's globals, for a
 * part of a catalog shown next to a text that states the contract already (tool search).
 */
export function renderDeclarations(catalog: Catalog, options: { header?: boolean } = {}): string {
  const parts = options.header === false ? [] : [HEADER];
  for (const namespace of catalog.namespaces) parts.push(renderNamespace(namespace));
  return `${parts.join("\n\n")}\n`;
}

function renderNamespace(namespace: CatalogNamespace): string {
  const taken = new Set<string>();
  const methods = namespace.methods.map((method) => renderMethod(method, taken));
  const doc = `/** Tools of MCP server ${JSON.stringify(namespace.server)}. */\n`;
  const body = methods.length === 0 ? "" : `\n${methods.join("\n\n")}\n`;
  return `${doc}declare namespace ${namespace.identifier} {${body}}`;
}

function renderMethod(method: CatalogMethod, taken: Set<string>): string {
  const stem = pascalCase(method.identifier);
  const notes: string[] = [];
  const declarations: string[] = [];

  let param = "input?: {}";
  if (!isEmptyObjectSchema(method.inputSchema)) {
    const input = declare(`${stem}Input`, method.inputSchema, taken);
    if (input.ok) {
      declarations.push(...input.declarations);
      const optional = hasNoRequiredProperties(method.inputSchema) ? "?" : "";
      param = `input${optional}: ${input.name}`;
    } else {
      param = "input: unknown";
      notes.push(`The input schema could not be converted (${input.reason}); input is unchecked.`);
    }
  }

  let result = "any";
  if (method.outputSchema !== undefined) {
    const output = declare(`${stem}Output`, method.outputSchema, taken);
    if (output.ok) {
      declarations.push(...output.declarations);
      result = output.name;
    } else {
      notes.push(`The output schema could not be converted (${output.reason}).`);
    }
  }

  const docLines = method.description?.trim() ? method.description.trim().split(/\r?\n/) : [];
  const doc = jsdoc([...docLines.map((line) => line.trimEnd()), ...notes], "  ");
  const signature = `${doc}  function ${method.identifier}(${param}): Promise<${result}>;`;
  return [...declarations, signature].join("\n");
}

type Declared = { ok: true; name: string; declarations: string[] } | { ok: false; reason: string };

/**
 * Declares `schema` as a type named after `preferred` plus the definitions it references. Names
 * are claimed in `taken` only when the whole schema converts, so a failed tool leaves no trace.
 */
function declare(preferred: string, schema: unknown, taken: Set<string>): Declared {
  const tentative = new Set(taken);
  const nameFor = createTypeNamer(tentative);
  const name = nameFor(preferred);
  const ctx = createSchemaContext({ root: schema, rootName: name, level: 1, typeName: nameFor });
  try {
    const main = declareType(name, schema, ctx);
    for (const claimed of tentative) taken.add(claimed);
    return { ok: true, name, declarations: [main, ...ctx.definitions.map((d) => d.declaration)] };
  } catch (error) {
    // Anything else thrown here is a converter bug; it still must not cost the other tools.
    const reason = error instanceof SchemaConversionError ? error.message : String(error);
    return { ok: false, reason };
  }
}
