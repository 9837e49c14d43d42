// Programs are checked against declarations rendered by @turtle/bindings from real-looking tool
// schemas, and every expected diagnostic is spelled out with its position: these tests document
// what an LLM gets back.
import { buildCatalog, renderDeclarations, type Tool } from "@turtle/bindings";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import {
  type CheckResult,
  createTypeChecker,
  MAX_DIAGNOSTICS,
  SANDBOX_GLOBALS,
} from "../src/index.ts";

const github: Tool[] = [
  {
    name: "search-issues",
    description: "Searches the issues of a repository.",
    inputSchema: {
      type: "object",
      properties: {
        repo: { type: "string", description: "owner/name" },
        state: { enum: ["open", "closed", "all"] },
        labels: { type: "array", items: { type: "string" } },
        limit: { type: "integer" },
      },
      required: ["repo"],
    },
    outputSchema: {
      type: "object",
      properties: {
        items: {
          type: "array",
          items: {
            type: "object",
            properties: {
              number: { type: "integer" },
              title: { type: "string" },
              assignee: { type: ["string", "null"] },
            },
            required: ["number", "title"],
          },
        },
      },
      required: ["items"],
    },
  },
  {
    name: "get-issue",
    inputSchema: {
      type: "object",
      properties: { repo: { type: "string" }, number: { type: "integer" } },
      required: ["repo", "number"],
    },
  },
  {
    name: "add-comment",
    inputSchema: {
      type: "object",
      properties: {
        repo: { type: "string" },
        number: { type: "integer" },
        body: { type: "string" },
        reactions: {
          type: "object",
          properties: { heart: { type: "boolean" }, rocket: { type: "boolean" } },
        },
      },
      required: ["repo", "number", "body"],
    },
  },
];

const slack: Tool[] = [
  {
    name: "post-message",
    inputSchema: {
      type: "object",
      properties: {
        channel: { type: "string" },
        text: { type: "string" },
        thread: { type: "object", properties: { ts: { type: "string" } }, required: ["ts"] },
      },
      required: ["channel", "text"],
    },
  },
];

const declarations = renderDeclarations(
  buildCatalog([
    { name: "github", tools: github },
    { name: "slack", tools: slack },
  ]),
);
const githubOnly = renderDeclarations(buildCatalog([{ name: "github", tools: github }]));

const checker = createTypeChecker();

/** Each diagnostic as `line:column-endLine:endColumn TScode message`. */
function described(result: CheckResult): string[] {
  return result.diagnostics.map(
    (d) => `${d.line}:${d.column}-${d.endLine}:${d.endColumn} TS${d.code} ${d.message}`,
  );
}

function errorsOf(code: string, against = declarations): string[] {
  return described(checker.check(code, against));
}

describe("a correct program", () => {
  it("passes: await, Promise.all, input, console, ToolError, a top-level return", () => {
    const program = `const repo: string = input.repo;
const found = await github.search_issues({ repo, state: "open", labels: ["bug"] });
const unassigned = found.items.filter((issue) => issue.assignee === null);
console.log("unassigned:", unassigned.length);
const details = await Promise.all(
  unassigned.map((issue) => github.get_issue({ repo, number: issue.number })),
);
for (const issue of unassigned) {
  try {
    await github.add_comment({ repo, number: issue.number, body: "Who takes this?" });
  } catch (error) {
    if (error instanceof ToolError) {
      console.warn(error.server, error.tool, error.message);
      continue;
    }
    throw new ToolError(String(error), "github", "add_comment");
  }
}
console.debug(details.length);
console.trace("done");
await slack.post_message({ channel: "#triage", text: \`\${unassigned.length} to triage\` });
return { repo, titles: unassigned.map((issue) => issue.title), details };
`;
    expect(checker.check(program, declarations)).toEqual({
      ok: true,
      diagnostics: [],
      truncated: false,
    });
  });

  it("may return anything, or nothing, from any branch", () => {
    expect(
      errorsOf("if (input.a) return;\nif (input.b) return 1;\nreturn { n: [1, 'x'] };"),
    ).toEqual([]);
    expect(errorsOf("return await github.get_issue({ repo: 'a/b', number: 1 });")).toEqual([]);
    expect(errorsOf("")).toEqual([]);
  });

  it("may be untyped, unused, unreachable, and read an error's message without narrowing", () => {
    const program = `function pick(rows, key) {
  return rows.map((row) => row[key]);
}
const unused = 1;
let later;
try {
  later = pick(input.rows, "id");
} catch (e) {
  console.error(e.message);
}
return later;
console.log("never");
`;
    expect(errorsOf(program)).toEqual([]);
  });

  it("lets an empty array grow from what is pushed, and checks what it holds", () => {
    const program =
      "const ids = [];\nfor (const n of [1, 2]) ids.push({ id: n });\nreturn ids.map((x) => x.id);";
    expect(errorsOf(program)).toEqual([]);
    expect(errorsOf("const ids = [];\nids.push(1);\nreturn ids[0].length;")).toEqual([
      "3:15-3:21 TS2339 Property 'length' does not exist on type 'number'.",
    ]);
  });

  it("has ES2025's library: Set methods and iterator helpers", () => {
    expect(
      errorsOf(
        "const a = new Set([1]).union(new Set([2]));\nreturn [1, 2].values().map((n) => n * 2).toArray();",
      ),
    ).toEqual([]);
  });
});

describe("errors with their exact positions", () => {
  it("a wrong argument type, at the property", () => {
    expect(errorsOf("const n = 1;\nawait github.get_issue({ repo: 'a/b', number: '7' });")).toEqual(
      ["2:39-2:45 TS2322 Type 'string' is not assignable to type 'number'."],
    );
  });

  it("a wrong type in a nested object and in an enum", () => {
    expect(
      errorsOf(`await github.add_comment({
  repo: "a/b",
  number: 1,
  body: "hi",
  reactions: { heart: "yes" },
});
await github.search_issues({ repo: "a/b", state: "opened" });`),
    ).toEqual([
      "5:16-5:21 TS2322 Type 'string' is not assignable to type 'boolean | undefined'.",
      `7:43-7:48 TS2820 Type '"opened"' is not assignable to type '"open" | "closed" | "all" | undefined'. Did you mean '"open"'?`,
    ]);
  });

  it("an unknown tool, naming it, and an unknown namespace", () => {
    expect(errorsOf("await github.list_pulls({ repo: 'a/b' });\n  await jira.search({});")).toEqual(
      [
        "1:14-1:24 TS2339 Property 'list_pulls' does not exist on type 'typeof github'.",
        "2:9-2:13 TS2304 Cannot find name 'jira'.",
      ],
    );
  });

  it("a missing required property, with the chain that says which", () => {
    expect(errorsOf("await slack.post_message({ channel: 'x' });")).toEqual([
      "1:26-1:42 TS2345 Argument of type '{ channel: string; }' is not assignable to parameter of type 'PostMessageInput'.\n" +
        "  Property 'text' is missing in type '{ channel: string; }' but required in type 'PostMessageInput'.",
    ]);
  });

  it("a property the tool does not take", () => {
    expect(
      errorsOf("await slack.post_message({ channel: 'x', text: 'y', color: 'red' });"),
    ).toEqual([
      "1:53-1:58 TS2353 Object literal may only specify known properties, and 'color' does not exist in type 'PostMessageInput'.",
    ]);
  });

  it("a possibly missing value from an optional, nullable result field", () => {
    expect(
      errorsOf(
        "const { items } = await github.search_issues({ repo: 'a/b' });\nreturn items[0].assignee.length;",
      ),
    ).toEqual(["2:8-2:25 TS2533 Object is possibly 'null' or 'undefined'."]);
  });

  it("syntax errors only, while the program does not parse", () => {
    expect(errorsOf("const a = ;\nawait github.nope();\nconst b = [1, 2;")).toEqual([
      "1:11-1:12 TS1109 Expression expected.",
      "3:16-3:17 TS1005 ',' expected.",
    ]);
  });

  it("an unclosed brace or comment at the program's end, not in the wrapper", () => {
    expect(errorsOf("if (input.ok) {\n  console.log(1);\n")).toEqual([
      "3:1-3:1 TS1005 '}' expected.",
    ]);
    expect(errorsOf("return 1; /* the end")).toEqual(["1:21-1:21 TS1010 '*/' expected."]);
  });

  it("counts lines of CRLF text and columns in UTF-16 units", () => {
    expect(errorsOf("// crème brûlée 🍮\r\nconst t = '🍮'; const n: number = t;")).toEqual([
      "2:23-2:24 TS2322 Type 'string' is not assignable to type 'number'.",
    ]);
  });
});

describe("the sandbox's globals", () => {
  it("has console's six methods and ToolError's constructor, nothing from Node or the web", () => {
    expect(
      errorsOf(`console.table([]);
const e = new ToolError("m");
await fetch("https://example.com");
setTimeout(() => {}, 10);
process.exit(1);`),
    ).toEqual([
      "1:9-1:14 TS2339 Property 'table' does not exist on type '{ readonly log: (...data: unknown[]) => void; readonly info: (...data: unknown[]) => void; readonly warn: (...data: unknown[]) => void; readonly error: (...data: unknown[]) => void; readonly debug: (...data: unknown[]) => void; readonly trace: (...data: unknown[]) => void; }'.",
      "2:11-2:29 TS2554 Expected 3-4 arguments, but got 1.",
      "3:7-3:12 TS2304 Cannot find name 'fetch'.",
      "4:1-4:11 TS2304 Cannot find name 'setTimeout'.",
      "5:1-5:8 TS2591 Cannot find name 'process'. The sandbox has the ES2025 standard library, console, input, ToolError and the declared namespaces, nothing else.",
    ]);
  });

  it("cannot be widened from the program", () => {
    expect(
      errorsOf('/// <reference lib="dom" />\n/// <reference types="node" />\nfetch("x");'),
    ).toEqual(["3:1-3:6 TS2304 Cannot find name 'fetch'."]);
  });

  it("declares what the header does not, and compiles with it without a conflict", () => {
    const header = renderDeclarations(buildCatalog([]));
    expect(header).not.toMatch(/\bconsole\b|declare (const|var|class) ToolError/);
    expect(SANDBOX_GLOBALS).not.toMatch(/\binput\b|interface ToolError/);
    expect(
      compileTogether({ "/globals.d.ts": SANDBOX_GLOBALS, "/api.d.ts": declarations }),
    ).toEqual([]);
  });
});

describe("declaration sets", () => {
  it("alternate correctly, each parsed once and kept by its text", () => {
    const small = createTypeChecker({ maxDeclarationSets: 1 });
    const program = "await slack.post_message({ channel: 'c', text: 't' });";
    const missing = ["1:7-1:12 TS2304 Cannot find name 'slack'."];
    for (const each of [checker, small]) {
      for (let round = 0; round < 3; round++) {
        expect(described(each.check(program, declarations))).toEqual([]);
        expect(described(each.check(program, githubOnly))).toEqual(missing);
      }
    }
  });

  it("that do not parse are reported at line 1, column 1, with where", () => {
    expect(errorsOf("return 1;", `${githubOnly}\ndeclare namespace broken {`)).toEqual([
      expect.stringMatching(
        /^1:1-1:1 TS1005 In the declarations, line \d+, column \d+: '}' expected\.$/,
      ),
    ]);
  });
});

describe("bad input", () => {
  it(`caps the diagnostics at ${MAX_DIAGNOSTICS}, sorted by position`, () => {
    const program = Array.from({ length: 60 }, (_, i) => `const v${i}: number = "${i}";`)
      .reverse()
      .join("\n");
    const result = checker.check(program, declarations);
    expect(result.ok).toBe(false);
    expect(result.truncated).toBe(true);
    expect(result.diagnostics).toHaveLength(MAX_DIAGNOSTICS);
    expect(result.diagnostics.map((d) => d.line)).toEqual(
      Array.from({ length: MAX_DIAGNOSTICS }, (_, i) => i + 1),
    );
    expect(result.diagnostics[0]).toEqual({
      line: 1,
      column: 7,
      endLine: 1,
      endColumn: 10,
      code: 2322,
      message: "Type 'string' is not assignable to type 'number'.",
    });
  });

  it("that closes the wrapper early stays inside the program's lines", () => {
    const result = checker.check("});\nawait github.nope(", declarations);
    expect(result.ok).toBe(false);
    for (const d of result.diagnostics) {
      expect(d.line).toBeGreaterThanOrEqual(1);
      expect(d.line).toBeLessThanOrEqual(2);
    }
  });

  it("nested too deeply gives a diagnostic, not an exception or a minute of CPU", () => {
    const chain = `return 1${" + 1".repeat(50_000)};`;
    expect(errorsOf(`const a = 1;\n${chain}`)).toEqual([
      `2:1-2:${chain.length + 1} TS0 This statement nests more than 500 levels deep, too deep to type-check: build long expressions with an array and a loop, or join().`,
    ]);
    expect(errorsOf(`return ${"(".repeat(20_000)}1${")".repeat(20_000)};`)).toEqual([
      "1:1-1:1 TS0 The program is nested too deeply to type-check.",
    ]);
    // The checker still works afterwards.
    expect(errorsOf("return 1;")).toEqual([]);
  });

  it("of any size or character gives diagnostics", () => {
    const junk = checker.check("\u0000\uD800@#%".repeat(20_000), declarations);
    expect(junk.ok).toBe(false);
    expect(junk.truncated).toBe(true);
    expect(junk.diagnostics[0]).toMatchObject({ line: 1, column: 1, code: 1127 });
  });
});

/** Every diagnostic of in-memory declaration files compiled together against ES2024. */
function compileTogether(files: Record<string, string>): string[] {
  const options: ts.CompilerOptions = { strict: true, noEmit: true, lib: ["lib.es2024.d.ts"] };
  const host = ts.createCompilerHost(options);
  const { getSourceFile } = host;
  host.getSourceFile = (name, language, ...rest) => {
    const text = files[name];
    return text === undefined
      ? getSourceFile.call(host, name, language, ...rest)
      : ts.createSourceFile(name, text, language);
  };
  const program = ts.createProgram(Object.keys(files), options, host);
  return ts
    .getPreEmitDiagnostics(program)
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, " "));
}
