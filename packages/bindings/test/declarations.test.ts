// The declarations are what an LLM reads, so these tests spell out the complete expected text:
// they are the documentation of the output format. The last block proves the text compiles.
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { EVERYTHING_SERVER, nodeServer, SLOW } from "@turtle/test-support";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildCatalog,
  type ClientPool,
  createClientPool,
  createSchemaContext,
  declareType,
  jsonSchemaToTs,
  renderDeclarations,
  SchemaConversionError,
} from "../src/index.ts";

/** The declarations of one server `s`, without the fixed header (tested once, below). */
function namespaceOf(tools: Tool[]): string {
  const text = renderDeclarations(buildCatalog([{ name: "s", tools }]));
  return text.slice(text.indexOf("/** Tools of MCP server"));
}

/** A tool `t` with the given input schema. */
function withInput(inputSchema: unknown): Tool[] {
  return [{ name: "t", inputSchema: inputSchema as Tool["inputSchema"] }];
}

describe("renderDeclarations", () => {
  it("starts with the program contract, then declares one namespace per server", () => {
    const catalog = buildCatalog([
      {
        name: "everything",
        tools: [
          {
            name: "echo",
            description: "Echoes back the input",
            inputSchema: {
              type: "object",
              properties: { message: { type: "string", description: "Message to echo" } },
              required: ["message"],
            },
          },
        ],
      },
      { name: "empty-server", tools: [] },
    ]);
    expect(renderDeclarations(catalog)).toBe(`/**
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
}

/** Tools of MCP server "everything". */
declare namespace everything {
  interface EchoInput {
    /** Message to echo */
    message: string;
  }
  /** Echoes back the input */
  function echo(input: EchoInput): Promise<any>;
}

/** Tools of MCP server "empty-server". */
declare namespace empty_server {}
`);
  });

  it("makes the input optional when the tool has no properties or none is required", () => {
    expect(
      namespaceOf([
        { name: "ping", inputSchema: { type: "object" } },
        {
          name: "list",
          inputSchema: { type: "object", properties: { limit: { type: "number" } } },
        },
      ]),
    ).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  function ping(input?: {}): Promise<any>;

  interface ListInput {
    limit?: number;
  }
  function list(input?: ListInput): Promise<any>;
}
`);
  });

  it("types the result with the outputSchema when there is one", () => {
    expect(
      namespaceOf([
        {
          name: "get-weather",
          inputSchema: { type: "object" },
          outputSchema: {
            type: "object",
            properties: { celsius: { type: "number" }, sky: { type: "string" } },
            required: ["celsius"],
          },
        },
      ]),
    ).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface GetWeatherOutput {
    celsius: number;
    sky?: string;
  }
  function get_weather(input?: {}): Promise<GetWeatherOutput>;
}
`);
  });

  it("maps primitive types, type lists and both nullable styles", () => {
    const schema = {
      type: "object",
      properties: {
        s: { type: "string" },
        n: { type: "number" },
        i: { type: "integer" },
        b: { type: "boolean" },
        z: { type: "null" },
        anything: {},
        multi: { type: ["string", "number"] },
        nullable: { type: ["string", "null"] },
        openapiNullable: { type: "string", nullable: true },
        freeForm: { type: "object" },
        closedEmpty: { type: "object", additionalProperties: false },
      },
      required: ["s"],
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface TInput {
    s: string;
    n?: number;
    i?: number;
    b?: boolean;
    z?: null;
    anything?: unknown;
    multi?: string | number;
    nullable?: string | null;
    openapiNullable?: string | null;
    freeForm?: { [key: string]: unknown };
    closedEmpty?: {};
  }
  function t(input: TInput): Promise<any>;
}
`);
  });

  it("renders enum and const as literal types", () => {
    const schema = {
      type: "object",
      properties: {
        mode: { type: "string", enum: ["fast", "safe"] },
        mixed: { enum: ["a", 1, true, null] },
        fixed: { const: "v1" },
        shape: { const: { tags: [1, "x"], "a-b": null } },
        impossible: { enum: [] },
      },
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface TInput {
    mode?: "fast" | "safe";
    mixed?: "a" | 1 | true | null;
    fixed?: "v1";
    shape?: { tags: [1, "x"]; "a-b": null };
    impossible?: never;
  }
  function t(input?: TInput): Promise<any>;
}
`);
  });

  it("renders anyOf/oneOf as unions and allOf as intersections", () => {
    const schema = {
      type: "object",
      properties: {
        id: { anyOf: [{ type: "string" }, { type: "array", items: { type: "number" } }] },
        event: {
          oneOf: [
            { type: "object", properties: { kind: { const: "a" } }, required: ["kind"] },
            {
              type: "object",
              properties: { kind: { const: "b" }, x: { type: "number" } },
              required: ["kind", "x"],
            },
          ],
        },
        both: {
          allOf: [
            { type: "object", properties: { a: { type: "string" } } },
            { type: "object", properties: { b: { type: "number" } } },
          ],
        },
        list: { type: "array", items: { anyOf: [{ type: "string" }, { type: "number" }] } },
        // Members that only constrain (required) add nothing to the type.
        constrained: {
          type: "object",
          properties: { a: { type: "string" } },
          anyOf: [{ required: ["a"] }, { required: ["b"] }],
        },
      },
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface TInput {
    id?: string | number[];
    event?: {
      kind: "a";
    } | {
      kind: "b";
      x: number;
    };
    both?: {
      a?: string;
    } & {
      b?: number;
    };
    list?: (string | number)[];
    constrained?: {
      a?: string;
    };
  }
  function t(input?: TInput): Promise<any>;
}
`);
  });

  it("declares a union input as a type alias", () => {
    const schema = {
      anyOf: [
        { type: "object", properties: { path: { type: "string" } }, required: ["path"] },
        { type: "object", properties: { url: { type: "string" } }, required: ["url"] },
      ],
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  type TInput = {
    path: string;
  } | {
    url: string;
  };
  function t(input: TInput): Promise<any>;
}
`);
  });

  it("names $defs and definitions as types, which also ends cycles", () => {
    const schema = {
      type: "object",
      properties: {
        root: { $ref: "#/$defs/Node" },
        owner: { $ref: "#/definitions/user-profile" },
      },
      required: ["root"],
      $defs: {
        Node: {
          type: "object",
          description: "A tree node",
          properties: {
            name: { type: "string" },
            children: { type: "array", items: { $ref: "#/$defs/Node" } },
          },
          required: ["name"],
        },
      },
      definitions: {
        "user-profile": { type: "object", properties: { email: { type: "string" } } },
      },
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface TInput {
    root: Node;
    owner?: UserProfile;
  }
  /** A tree node */
  interface Node {
    name: string;
    children?: Node[];
  }
  interface UserProfile {
    email?: string;
  }
  function t(input: TInput): Promise<any>;
}
`);
  });

  it('refers to the type itself for "#" and inlines other local pointers', () => {
    const schema = {
      type: "object",
      properties: {
        mode: { type: "string", enum: ["x", "y"] },
        fallbackMode: { $ref: "#/properties/mode" },
        next: { $ref: "#" },
      },
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface TInput {
    mode?: "x" | "y";
    fallbackMode?: "x" | "y";
    next?: TInput;
  }
  function t(input?: TInput): Promise<any>;
}
`);
  });

  it("opens objects with index signatures only when additionalProperties allows it", () => {
    const schema = {
      type: "object",
      properties: {
        labels: { type: "object", additionalProperties: { type: "string" } },
        meta: { type: "object", additionalProperties: true },
        closed: {
          type: "object",
          properties: { id: { type: "string" } },
          additionalProperties: false,
        },
        // TypeScript makes named properties fit the index signature; JSON Schema doesn't.
        mixed: {
          type: "object",
          properties: { id: { type: "string" } },
          additionalProperties: { type: "number" },
        },
        headers: { type: "object", patternProperties: { "^x-": { type: "string" } } },
        nested: {
          type: "object",
          additionalProperties: { type: "object", properties: { v: { type: "number" } } },
        },
      },
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface TInput {
    labels?: { [key: string]: string };
    meta?: { [key: string]: unknown };
    closed?: {
      id?: string;
    };
    mixed?: {
      id?: string;
      [key: string]: unknown;
    };
    headers?: { [key: string]: string };
    nested?: {
      [key: string]: {
        v?: number;
      };
    };
  }
  function t(input?: TInput): Promise<any>;
}
`);
  });

  it("renders arrays and tuples (prefixItems and draft-07 array items)", () => {
    const schema = {
      type: "object",
      properties: {
        names: { type: "array", items: { type: "string" } },
        anything: { type: "array" },
        none: { type: "array", items: false },
        pair: {
          type: "array",
          prefixItems: [{ type: "string" }, { type: "number" }],
          items: false,
          minItems: 2,
          maxItems: 2,
        },
        headAndRest: {
          type: "array",
          prefixItems: [{ type: "string" }],
          items: { type: "boolean" },
          minItems: 1,
        },
        draft7: {
          type: "array",
          items: [{ type: "string" }, { type: ["number", "null"] }],
          additionalItems: false,
          minItems: 1,
        },
        open: { type: "array", items: [{ type: "string" }] },
      },
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface TInput {
    names?: string[];
    anything?: unknown[];
    none?: [];
    pair?: [string, number];
    headAndRest?: [string, ...boolean[]];
    draft7?: [string, (number | null)?];
    open?: [string?, ...unknown[]];
  }
  function t(input?: TInput): Promise<any>;
}
`);
  });

  it("turns description, format, default and deprecated into JSDoc, escaping */", () => {
    const tools: Tool[] = [
      {
        name: "t",
        description: "Schedules a job.\n\nBeware of */ in text.",
        inputSchema: {
          type: "object",
          description: "When and what.",
          properties: {
            at: {
              type: "string",
              format: "date-time",
              description: "Start time */ UTC",
              default: "now",
            },
            legacy: { type: "string", deprecated: true },
          },
        },
      },
    ];
    expect(namespaceOf(tools)).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  /** When and what. */
  interface TInput {
    /**
     * Start time *\\/ UTC
     * @format date-time
     * @default "now"
     */
    at?: string;
    /** @deprecated */
    legacy?: string;
  }
  /**
   * Schedules a job.
   *
   * Beware of *\\/ in text.
   */
  function t(input?: TInput): Promise<any>;
}
`);
  });

  it("quotes property names that are not identifiers", () => {
    const schema = {
      type: "object",
      properties: {
        "content-type": { type: "string" },
        "2x": { type: "number" },
        "": { type: "string" },
        default: { type: "string" },
        $id: { type: "string" },
      },
    };
    expect(namespaceOf(withInput(schema))).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface TInput {
    "content-type"?: string;
    "2x"?: number;
    ""?: string;
    default?: string;
    $id?: string;
  }
  function t(input?: TInput): Promise<any>;
}
`);
  });

  it("degrades only the tool whose schema cannot be converted, and says why", () => {
    let deep: unknown = { type: "string" };
    for (let i = 0; i < 40; i++) deep = { type: "array", items: deep };
    const tools = [
      {
        name: "missing_ref",
        inputSchema: { type: "object", properties: { a: { $ref: "#/$defs/X" } } },
      },
      {
        name: "remote_ref",
        inputSchema: { type: "object", properties: { a: { $ref: "https://x.test/s.json" } } },
      },
      { name: "bad_type", inputSchema: { type: "object", properties: { a: { type: "strang" } } } },
      { name: "too_deep", inputSchema: { type: "object", properties: { a: deep } } },
      {
        name: "bad_output",
        inputSchema: { type: "object", properties: { a: { type: "string" } } },
        outputSchema: { type: "object", properties: { x: 5 } },
      },
    ] as Tool[];
    expect(namespaceOf(tools)).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  /** The input schema could not be converted (unknown $ref "#/$defs/X"); input is unchecked. */
  function missing_ref(input: unknown): Promise<any>;

  /** The input schema could not be converted (unsupported $ref "https://x.test/s.json"); input is unchecked. */
  function remote_ref(input: unknown): Promise<any>;

  /** The input schema could not be converted (unknown type "strang"); input is unchecked. */
  function bad_type(input: unknown): Promise<any>;

  /** The input schema could not be converted (schema nests deeper than 32 levels); input is unchecked. */
  function too_deep(input: unknown): Promise<any>;

  interface BadOutputInput {
    a?: string;
  }
  /** The output schema could not be converted (malformed schema: expected an object, got 5). */
  function bad_output(input?: BadOutputInput): Promise<any>;
}
`);
  });

  it("keeps type names unique within a namespace and clear of globals", () => {
    const tools = [
      {
        name: "a",
        inputSchema: {
          type: "object",
          properties: { item: { $ref: "#/$defs/Item" }, when: { $ref: "#/$defs/Date" } },
          $defs: { Item: { type: "string" }, Date: { type: "string", format: "date" } },
        },
      },
      {
        name: "b",
        inputSchema: {
          type: "object",
          properties: { item: { $ref: "#/$defs/Item" } },
          $defs: { Item: { type: "object", properties: { id: { type: "number" } } } },
        },
      },
      // get-file and getFile are different methods whose input types would share a name.
      { name: "get-file", inputSchema: { type: "object", properties: { p: { type: "string" } } } },
      { name: "getFile", inputSchema: { type: "object", properties: { q: { type: "string" } } } },
    ] as Tool[];
    expect(namespaceOf(tools)).toBe(`/** Tools of MCP server "s". */
declare namespace s {
  interface AInput {
    item?: Item;
    when?: Date_;
  }
  type Item = string;
  /** @format date */
  type Date_ = string;
  function a(input?: AInput): Promise<any>;

  interface BInput {
    item?: Item2;
  }
  interface Item2 {
    id?: number;
  }
  function b(input?: BInput): Promise<any>;

  interface GetFileInput {
    p?: string;
  }
  function get_file(input?: GetFileInput): Promise<any>;

  interface GetFileInput2 {
    q?: string;
  }
  function getFile(input?: GetFileInput2): Promise<any>;
}
`);
  });
});

describe("jsonSchemaToTs", () => {
  it("converts one schema to type text and collects the definitions it used", () => {
    const root = {
      type: "object",
      properties: { tags: { type: "array", items: { $ref: "#/definitions/tag" } } },
      required: ["tags"],
      definitions: { tag: { type: "string", enum: ["a", "b"] } },
    };
    const ctx = createSchemaContext({ root });
    expect(jsonSchemaToTs(root, ctx)).toBe("{\n  tags: Tag[];\n}");
    expect(ctx.definitions).toEqual([{ name: "Tag", declaration: 'type Tag = "a" | "b";' }]);
    expect(declareType("Tags", root, createSchemaContext({ root }))).toBe(
      "interface Tags {\n  tags: Tag[];\n}",
    );
  });

  it("throws SchemaConversionError for what it cannot convert", () => {
    const ctx = createSchemaContext({ root: {} });
    expect(() => jsonSchemaToTs({ $ref: "#/nope" }, ctx)).toThrow(SchemaConversionError);
    expect(() => jsonSchemaToTs("string", ctx)).toThrow(
      'malformed schema: expected an object, got "string"',
    );
    expect(() => jsonSchemaToTs({ anyOf: {} }, ctx)).toThrow("anyOf must be an array");
  });
});

describe("declarations compile", () => {
  let pool: ClientPool;
  beforeAll(() => {
    // Confined, as the platform runs it: server-everything lives in node_modules.
    pool = createClientPool(
      { everything: nodeServer(EVERYTHING_SERVER, ["stdio"]) },
      { sandbox: { kind: "bwrap" } },
    );
  });
  afterAll(() => pool.close());

  it("uses a checker that reports errors", () => {
    expect(typeCheck({ "/virtual/bad.ts": "const n: number = 'one';" })).toEqual([
      "/virtual/bad.ts:1: Type 'string' is not assignable to type 'number'.",
    ]);
  });

  it("type-checks server-everything's real tools and a program using them", {
    timeout: SLOW,
  }, async () => {
    const tools = await pool.listTools("everything");
    expect(tools.map((tool) => tool.name)).toContain("get-structured-content");
    const declarations = renderDeclarations(buildCatalog([{ name: "everything", tools }]));
    const program = `
async function main() {
  const echoed = await everything.echo({ message: "hi" });
  const weather: everything.GetStructuredContentOutput =
    await everything.get_structured_content({ location: "Chicago" });
  const celsius: number = weather.temperature;
  await everything.get_env();
  await everything.get_resource_links({ count: 2 });
  // @ts-expect-error location is one of three cities
  await everything.get_structured_content({ location: "Paris" });
  // @ts-expect-error message is required
  await everything.echo({});
  try {
    await everything.get_sum({ a: 1, b: 2 });
  } catch (error) {
    const failure = error as ToolError;
    return [failure.server, failure.tool, failure.message, echoed, celsius, input.anything];
  }
}
`;
    expect(
      typeCheck({ "/virtual/api.d.ts": declarations, "/virtual/program.ts": program }),
    ).toEqual([]);
  });

  it("type-checks every feature fixture and awkward names", () => {
    const awkward = ["type", "of", "async", "get", "declare", "namespace", "module", "global"];
    const fixtures: Tool[] = [
      ...awkward.map((name) => ({ name, inputSchema: { type: "object" as const } })),
      {
        name: "kitchen-sink",
        inputSchema: {
          type: "object",
          properties: {
            tree: { $ref: "#/$defs/Node" },
            union: { oneOf: [{ type: "string" }, { type: "object", properties: { a: {} } }] },
            both: {
              allOf: [
                { type: "object", properties: { a: { type: "string" } } },
                { type: "object" },
              ],
            },
            map: {
              type: "object",
              properties: { id: { type: "string" } },
              additionalProperties: { type: "number" },
            },
            tuple: {
              type: "array",
              prefixItems: [{ type: "string" }, { type: ["number", "null"] }],
              minItems: 1,
            },
            literal: { const: { nested: [1, { "a b": true }] } },
            "quoted key": { type: "string", nullable: true },
            self: { $ref: "#" },
          },
          $defs: {
            Node: {
              type: "object",
              properties: { children: { type: "array", items: { $ref: "#/$defs/Node" } } },
            },
            Promise: { type: "string" },
          },
        },
        outputSchema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] },
      },
    ] as Tool[];
    const declarations = renderDeclarations(
      buildCatalog([
        { name: "global", tools: fixtures },
        { name: "type", tools: fixtures.slice(0, 2) },
      ]),
    );
    const program = `
async function main() {
  const out = await global.kitchen_sink({ tree: { children: [{}] }, tuple: ["x"], self: {} });
  const ok: boolean = out.ok;
  await type.type();
  return [ok, await global.declare(), await global.namespace({})];
}
`;
    expect(
      typeCheck({ "/virtual/api.d.ts": declarations, "/virtual/program.ts": program }),
    ).toEqual([]);
  });
});

/** Compiles in-memory files against lib.es2024 and returns the diagnostics, one line each. */
function typeCheck(files: Record<string, string>): string[] {
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2024.d.ts"],
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, language, ...rest) => {
    const text = files[name];
    return text === undefined
      ? getSourceFile.call(host, name, language, ...rest)
      : ts.createSourceFile(name, text, language);
  };
  host.fileExists = (name) => name in files || fileExists.call(host, name);
  host.readFile = (name) => files[name] ?? readFile.call(host, name);
  const program = ts.createProgram(Object.keys(files), options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    if (!diagnostic.file || diagnostic.start === undefined) return message;
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    return `${diagnostic.file.fileName}:${line + 1}: ${message}`;
  });
}
