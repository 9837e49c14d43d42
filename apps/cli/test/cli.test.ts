import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, runTurtle } from "@turtle/test-support";
import { describe, expect, it } from "vitest";

const servers = join(REPO_ROOT, "examples/mcp-servers.json");

/** Runs the real `turtle` command the way `npx turtle` does, from the repository root. */
const turtle = (...args: string[]) => runTurtle(args);

async function program(code: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "turtle-cli-"));
  const file = join(dir, "program.ts");
  await writeFile(file, code);
  return file;
}

describe("turtle exec", () => {
  it("runs the README's example against real MCP servers", async () => {
    const run = await turtle(
      "exec",
      "examples/weather-report.ts",
      "--servers",
      "examples/mcp-servers.json",
      "--input",
      "@examples/weather-report.input.json",
    );
    expect(run.stderr).toContain("recorded 3 cities in the knowledge graph");
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.observations).toHaveLength(3);
    expect(["New York", "Chicago", "Los Angeles"]).toContain(result.warmest);
  });

  it("prints the result as JSON and logs on stderr", async () => {
    const file = await program("console.log('hello', input.n);\nreturn { double: input.n * 2 };");
    const run = await turtle("exec", file, "--input", '{"n": 21}');
    expect(run).toEqual({ code: 0, stdout: '{\n  "double": 42\n}\n', stderr: "hello 21\n" });
  });

  it("exits non-zero with the error located in the TypeScript", async () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the program under test uses a template
    const file = await program("const n: number = 1;\n\nthrow new Error(`bad ${n}`);");
    const run = await turtle("exec", file);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr.split("\n")[0]).toBe(`${file}:3:7 Error: bad 1`);
  });

  it("reports a tool error with its server and tool", async () => {
    const file = await program("await everything.get_structured_content({ location: 'Mars' });");
    const run = await turtle("exec", file, "--servers", servers);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^.*program\.ts:1:1 ToolError: .*\(server "everything", tool "get-structured-content"\)/,
    );
  });

  it.each([
    [["exec"], "exec needs a program file"],
    [["exec", "no-such-file.ts"], 'cannot read program "no-such-file.ts": no such file'],
    [
      ["exec", "examples/weather-report.ts", "--servers", "nope.json"],
      'cannot read servers file "nope.json"',
    ],
    [["exec", "examples/weather-report.ts", "--input", "{bad"], "--input is not valid JSON"],
    [
      ["exec", "examples/weather-report.ts", "--timeout", "soon"],
      "--timeout must be a positive whole number",
    ],
    [["exec", "examples/weather-report.ts", "--bogus"], "Unknown option '--bogus'"],
    [["launch"], 'unknown command "launch"'],
  ])("turtle %j fails with one line that says what to fix", async (args, message) => {
    const run = await turtle(...args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("names an unreachable server in one line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "turtle-cli-"));
    const file = join(dir, "servers.json");
    await writeFile(
      file,
      JSON.stringify({ mcpServers: { ghost: { command: "/nonexistent/mcp-server" } } }),
    );
    const run = await turtle("types", "--servers", file);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('"ghost"');
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("turtle types", () => {
  it("prints declarations for every server's tools", async () => {
    const run = await turtle("types", "--servers", servers);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("declare namespace everything");
    expect(run.stdout).toContain("declare namespace memory");
    expect(run.stdout).toContain("function get_structured_content(");
  });
});
