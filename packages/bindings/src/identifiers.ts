// Server and tool names become the namespaces and methods of the program API, so they must be
// identifiers a program can write, that shadow nothing the sandbox provides, and that stay
// unambiguous. A collision is an error rather than a silent `_2` suffix: which tool `get_file`
// means would otherwise depend on listing order.
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { CatalogError } from "./errors.ts";

export interface CatalogMethod {
  identifier: string;
  tool: string;
  description?: string;
  inputSchema: unknown;
  outputSchema?: unknown;
  /** What the server says the tool does (readOnlyHint, destructiveHint…): tool policies read it. */
  annotations?: ToolAnnotations;
}

export interface ToolAnnotations {
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
  title?: string;
}

export interface CatalogNamespace {
  identifier: string;
  server: string;
  methods: CatalogMethod[];
}

export interface Catalog {
  namespaces: CatalogNamespace[];
}

/** ES reserved words, strict-mode reserved words, and the two strict-mode-restricted names. */
const RESERVED_WORDS = new Set(
  (
    "await break case catch class const continue debugger default delete do else enum export " +
    "extends false finally for function if import in instanceof new null return super switch " +
    "this throw true try typeof var void while with yield " +
    "implements interface let package private protected public static arguments eval"
  ).split(" "),
);

/**
 * Globals a program may use: every standard ECMAScript global (V8 also provides `Intl` and
 * `WebAssembly`), plus what Turtle itself puts in the sandbox. `ToolError` is reserved because the
 * declarations publish it as a type.
 */
const SANDBOX_GLOBALS = new Set(
  (
    "globalThis Infinity NaN undefined isFinite isNaN parseFloat parseInt decodeURI " +
    "decodeURIComponent encodeURI encodeURIComponent escape unescape AggregateError Array " +
    "ArrayBuffer AsyncDisposableStack Atomics BigInt BigInt64Array BigUint64Array Boolean DataView " +
    "Date DisposableStack Error EvalError FinalizationRegistry Float16Array Float32Array " +
    "Float64Array Function Int8Array Int16Array Int32Array Intl Iterator JSON Map Math Number " +
    "Object Promise Proxy RangeError ReferenceError Reflect RegExp Set SharedArrayBuffer String " +
    "SuppressedError Symbol SyntaxError TypeError Uint8Array Uint8ClampedArray Uint16Array " +
    "Uint32Array URIError WeakMap WeakRef WeakSet WebAssembly " +
    "input console ToolError"
  ).split(" "),
);

/**
 * Names every object inherits (`toString`, `constructor`, `__proto__`…): a global of that name is
 * already there in every context, so a namespace named so would shadow it or fail to install.
 */
const INHERITED_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));

/** Namespaces Turtle keeps for what it will put in programs itself. */
const TURTLE_NAMESPACES = new Set(["turtle", "skills", "state"]);

/**
 * Why `name` cannot be a server's name, or undefined when it can. A server's name is its
 * namespace in programs (after `-` and `.` become `_`), a global of the sandbox: it may not be a
 * reserved word, shadow a global the sandbox provides or a name every object inherits, or take
 * one Turtle keeps. Checked when a server is registered; a program would otherwise find the
 * name meaning something else, or no run of the project could install its namespaces.
 */
export function serverNameProblem(name: string): string | undefined {
  const id = name.replace(/[^A-Za-z0-9_$]/g, "_");
  const named = id === name ? `"${name}"` : `"${name}" (namespace ${id})`;
  if (RESERVED_WORDS.has(id)) return `${named} is a JavaScript reserved word`;
  if (SANDBOX_GLOBALS.has(id)) return `${named} would shadow the sandbox's global ${id}`;
  if (INHERITED_NAMES.has(id)) return `${named} would shadow ${id}, which every object inherits`;
  if (TURTLE_NAMESPACES.has(id)) return `${named} is a namespace Turtle keeps for itself`;
  return undefined;
}

/**
 * A name as a safe JavaScript identifier: characters outside `[A-Za-z0-9_$]` become `_`, a
 * leading digit gets a `_` prefix, and reserved words, sandbox globals and names every object
 * inherits get a trailing `_`. `get-file` → `get_file`, `2fa` → `_2fa`, `delete` → `delete_`,
 * `JSON` → `JSON_`, `toString` → `toString_`.
 */
export function toIdentifier(name: string): string {
  let id = name.replace(/[^A-Za-z0-9_$]/g, "_");
  if (id === "") return "_";
  if (/^[0-9]/.test(id)) id = `_${id}`;
  if (RESERVED_WORDS.has(id) || SANDBOX_GLOBALS.has(id) || INHERITED_NAMES.has(id)) id = `${id}_`;
  return id;
}

/** Whether `id` may be used as-is as a namespace, function or type name in the program API. */
export function isSafeIdentifier(id: string): boolean {
  return (
    /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(id) &&
    !RESERVED_WORDS.has(id) &&
    !SANDBOX_GLOBALS.has(id) &&
    !INHERITED_NAMES.has(id)
  );
}

/** Maps servers and their tools to the program API's namespaces and methods. */
export function buildCatalog(servers: Array<{ name: string; tools: Tool[] }>): Catalog {
  const namespaceOwners = new Map<string, string>();
  const namespaces: CatalogNamespace[] = [];
  for (const server of servers) {
    const identifier = toIdentifier(server.name);
    claim(namespaceOwners, identifier, server.name, (other) => {
      return `MCP servers "${other}" and "${server.name}" both map to the namespace "${identifier}"; rename one`;
    });
    const methodOwners = new Map<string, string>();
    const methods: CatalogMethod[] = [];
    for (const tool of server.tools) {
      const method = toIdentifier(tool.name);
      claim(methodOwners, method, tool.name, (other) => {
        return `tools "${other}" and "${tool.name}" of MCP server "${server.name}" both map to "${identifier}.${method}"`;
      });
      methods.push({
        identifier: method,
        tool: tool.name,
        ...(tool.description === undefined ? {} : { description: tool.description }),
        inputSchema: tool.inputSchema,
        ...(tool.outputSchema === undefined ? {} : { outputSchema: tool.outputSchema }),
        ...(tool.annotations === undefined ? {} : { annotations: tool.annotations }),
      });
    }
    namespaces.push({ identifier, server: server.name, methods });
  }
  return { namespaces };
}

function claim(
  owners: Map<string, string>,
  identifier: string,
  original: string,
  message: (other: string) => string,
): void {
  const other = owners.get(identifier);
  if (other !== undefined) {
    throw new CatalogError(message(other), identifier, [other, original]);
  }
  owners.set(identifier, original);
}

export interface ResolvedMethod {
  server: string;
  tool: string;
  annotations?: ToolAnnotations;
}

type MethodIndex = Map<string, Map<string, ResolvedMethod>>;
const indexes = new WeakMap<Catalog, MethodIndex>();

/**
 * The server and tool behind `namespace.method` in a program, or undefined. Called for every tool
 * call, so the catalog is indexed once (per catalog object) into nested Maps.
 */
export function resolveMethod(
  catalog: Catalog,
  namespaceIdentifier: string,
  methodIdentifier: string,
): ResolvedMethod | undefined {
  let index = indexes.get(catalog);
  if (!index) {
    index = new Map();
    for (const ns of catalog.namespaces) {
      const methods = new Map<string, ResolvedMethod>();
      for (const method of ns.methods) {
        methods.set(method.identifier, {
          server: ns.server,
          tool: method.tool,
          ...(method.annotations === undefined ? {} : { annotations: method.annotations }),
        });
      }
      index.set(ns.identifier, methods);
    }
    indexes.set(catalog, index);
  }
  return index.get(namespaceIdentifier)?.get(methodIdentifier);
}
