import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";
import {
  buildCatalog,
  CatalogError,
  resolveMethod,
  ServerNameSchema,
  toIdentifier,
} from "../src/index.ts";

const tool = (name: string, extra: Partial<Tool> = {}): Tool => ({
  name,
  inputSchema: { type: "object" },
  ...extra,
});

describe("toIdentifier", () => {
  it("replaces non-identifier characters and prefixes a leading digit", () => {
    expect(toIdentifier("get-file")).toBe("get_file");
    expect(toIdentifier("list.items")).toBe("list_items");
    expect(toIdentifier("2fa")).toBe("_2fa");
    expect(toIdentifier("my server/v2")).toBe("my_server_v2");
    expect(toIdentifier("café")).toBe("caf_");
    expect(toIdentifier("$ok_")).toBe("$ok_");
    expect(toIdentifier("")).toBe("_");
  });

  it("appends _ to reserved words and to the sandbox's globals", () => {
    for (const word of ["delete", "class", "new", "await", "yield", "let", "static", "enum"]) {
      expect(toIdentifier(word)).toBe(`${word}_`);
    }
    for (const word of ["arguments", "eval", "implements", "package"]) {
      expect(toIdentifier(word)).toBe(`${word}_`);
    }
    for (const global of ["Object", "JSON", "Promise", "Math", "globalThis", "undefined"]) {
      expect(toIdentifier(global)).toBe(`${global}_`);
    }
    expect(toIdentifier("input")).toBe("input_");
    expect(toIdentifier("console")).toBe("console_");
    // Not reserved: these stay as they are.
    expect(toIdentifier("of")).toBe("of");
    expect(toIdentifier("type")).toBe("type");
    expect(toIdentifier("object")).toBe("object");
  });
});

describe("buildCatalog", () => {
  it("maps servers to namespaces and tools to methods, keeping the originals", () => {
    const catalog = buildCatalog([
      {
        name: "my-files",
        tools: [
          tool("get-file", {
            description: "Reads a file",
            outputSchema: { type: "object", properties: {} },
          }),
          tool("delete"),
        ],
      },
      { name: "JSON", tools: [] },
    ]);
    expect(catalog).toEqual({
      namespaces: [
        {
          identifier: "my_files",
          server: "my-files",
          methods: [
            {
              identifier: "get_file",
              tool: "get-file",
              description: "Reads a file",
              inputSchema: { type: "object" },
              outputSchema: { type: "object", properties: {} },
            },
            { identifier: "delete_", tool: "delete", inputSchema: { type: "object" } },
          ],
        },
        { identifier: "JSON_", server: "JSON", methods: [] },
      ],
    });
  });

  it("refuses two tools of one server that map to the same identifier", () => {
    const build = () =>
      buildCatalog([{ name: "files", tools: [tool("get-file"), tool("get.file")] }]);
    expect(build).toThrow(CatalogError);
    expect(build).toThrow(
      'tools "get-file" and "get.file" of MCP server "files" both map to "files.get_file"',
    );
    try {
      build();
    } catch (error) {
      expect(error).toMatchObject({
        code: "identifier_collision",
        identifier: "get_file",
        originals: ["get-file", "get.file"],
      });
    }
  });

  it("refuses two servers that map to the same namespace", () => {
    expect(() =>
      buildCatalog([
        { name: "my-files", tools: [] },
        { name: "my.files", tools: [] },
      ]),
    ).toThrow(
      'MCP servers "my-files" and "my.files" both map to the namespace "my_files"; rename one',
    );
  });
});

describe("server names", () => {
  it("appends _ to names every object inherits, so a tool named so cannot shadow them", () => {
    for (const name of ["toString", "constructor", "__proto__", "valueOf", "hasOwnProperty"]) {
      expect(toIdentifier(name)).toBe(`${name}_`);
    }
  });

  it("refuses a server name that would shadow a global, an inherited name or Turtle's own", () => {
    const problem = (name: string) => {
      const parsed = ServerNameSchema.safeParse(name);
      return parsed.success ? undefined : parsed.error.issues[0]?.message;
    };
    expect(problem("toString")).toBe(
      '"toString" would shadow toString, which every object inherits; a server\'s name is its namespace in programs: choose another',
    );
    expect(problem("__proto__")).toContain("which every object inherits");
    expect(problem("console")).toContain("would shadow the sandbox's global console");
    expect(problem("input")).toContain("would shadow the sandbox's global input");
    expect(problem("class")).toContain('"class" is a JavaScript reserved word');
    expect(problem("state")).toContain("a namespace Turtle keeps for itself");
    for (const ok of ["github", "server-everything", "my.files", "toStrings", "Console"]) {
      expect(problem(ok)).toBeUndefined();
    }
  });
});

describe("resolveMethod", () => {
  it("finds the server and tool behind namespace.method", () => {
    const catalog = buildCatalog([
      { name: "my-files", tools: [tool("get-file"), tool("list")] },
      { name: "web", tools: [tool("fetch")] },
    ]);
    expect(resolveMethod(catalog, "my_files", "get_file")).toEqual({
      server: "my-files",
      tool: "get-file",
    });
    expect(resolveMethod(catalog, "web", "fetch")).toEqual({ server: "web", tool: "fetch" });
    expect(resolveMethod(catalog, "web", "get_file")).toBeUndefined();
    expect(resolveMethod(catalog, "nope", "fetch")).toBeUndefined();
    expect(resolveMethod(catalog, "my_files", "constructor")).toBeUndefined();
  });
});
