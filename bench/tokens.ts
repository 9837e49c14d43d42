/**
 * `npm run bench:tokens`: the tokens a model's context takes in for the same task done by a
 * classic tool-calling agent and by a Code Mode agent on Turtle, over real MCP servers. Prints a
 * table and the counting method; writes bench/results/tokens.json (with `--json`, stdout is that
 * JSON alone and the table goes to stderr).
 * Name workflows to run only those: `npm run bench:tokens -- spreadsheet join`.
 */
import { chown, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { ClassicServers } from "./tokens/classic.ts";
import { Facade } from "./tokens/code-mode.ts";
import { definitionsText, type Tally, tokens } from "./tokens/count.ts";
import { writeKnowledgeGraph, writeProjectTree } from "./tokens/fixtures.ts";
import { startPlatform } from "./tokens/platform.ts";
import { formatReport, METHOD, type Report, type Row } from "./tokens/report.ts";
import { SERVERS_DIR, serverEntries } from "./tokens/servers.ts";
import { type Workflow, workflows } from "./tokens/workflows.ts";

const FIXED_PROMPT_GOAL = 1_100;

const args = process.argv.slice(2);
const asJson = args.includes("--json");
const asked = args.filter((arg) => !arg.startsWith("--"));

// A fixed directory, not a random one: its path is in the filesystem workflow's prompt, program
// and results, and the counts should not change from one run to the next.
const work = join(tmpdir(), "turtle-bench-tokens");
const projectRoot = join(work, "acme-platform");
const memoryFile = (side: string) => join(work, side, "memory.jsonl");

const all = workflows({ projectRoot });
const unknown = asked.filter((name) => !all.some((w) => w.name === name));
if (unknown.length > 0) {
  const names = all.map((w) => w.name).join(", ");
  process.stderr.write(`bench:tokens: no workflow ${unknown.join(", ")}; they are ${names}\n`);
  process.exit(2);
}
const chosen = asked.length === 0 ? all : all.filter((w) => asked.includes(w.name));

await rm(work, { recursive: true, force: true });
try {
  const fileCount = (await writeProjectTree(projectRoot)).length;
  await writeKnowledgeGraph(memoryFile("classic"));
  await writeKnowledgeGraph(memoryFile("turtle"));
  // Run as root, Turtle's confined servers are uid 65534: the memory server's directory is theirs.
  if (process.getuid?.() === 0) {
    for (const path of [dirname(memoryFile("turtle")), memoryFile("turtle")]) {
      await chown(path, 65_534, 65_534);
    }
  }

  progress(`classic agent: ${chosen.length} workflows, straight to the servers over stdio`);
  const classic = await ClassicServers.connect(
    serverEntries({ memoryFile: memoryFile("classic"), projectRoot }),
  );
  const classicRuns = new Map<string, { value: unknown; tally: Tally }>();
  let allServers: number;
  let allTools: number;
  let allDefinitions: number;
  try {
    for (const workflow of chosen) {
      const agent = classic.agent(workflow.servers, workflow.prompt);
      const value = normalize(await workflow.classic(agent));
      classicRuns.set(workflow.name, { value, tally: agent.finish(workflow.answer(value)) });
      progress(`  ${workflow.name}: ${classicRuns.get(workflow.name)?.tally.total} tokens`);
    }
    const everyTool = [...classic.tools.values()].flat();
    allServers = classic.tools.size;
    allTools = everyTool.length;
    allDefinitions = tokens(definitionsText(everyTool));
  } finally {
    await classic.close();
  }

  progress("Code Mode agent: Turtle's API and one worker, servers registered, MCP façade");
  const platform = await startPlatform(
    serverEntries({ memoryFile: memoryFile("turtle"), projectRoot }),
    // Confined servers see what the operator lists: our own servers and the modules they import,
    // the filesystem server's project (read-only) and the memory server's file (its directory,
    // writable).
    {
      STDIO_SANDBOX_PATHS: [
        dirname(SERVERS_DIR),
        projectRoot,
        `${dirname(memoryFile("turtle"))}:rw`,
      ].join(","),
    },
  );
  const rows: Row[] = [];
  let facadeDefinitions: number;
  try {
    const facade = await Facade.connect(platform.base, platform.key);
    try {
      facadeDefinitions = facade.definitions;
      for (const workflow of chosen) {
        const classicRun = classicRuns.get(workflow.name);
        if (classicRun === undefined) throw new Error(`no classic run of ${workflow.name}`);
        const agent = facade.agent(workflow.prompt);
        const found = await agent.search(workflow.search);
        for (const tool of toolsCalled(workflow))
          if (!found.includes(`function ${tool}(`))
            throw new Error(
              `${workflow.name}: search_tools ${JSON.stringify(workflow.search)} did not show ${tool}, which the program calls; an agent could not have written it. The search answered:\n${found}`,
            );
        const { result } = await agent.execute(workflow.program);
        if (!isDeepStrictEqual(normalize(result), classicRun.value))
          throw new Error(
            `${workflow.name}: the Code Mode result differs from the classic agent's answer\nCode Mode: ${JSON.stringify(result)}\nclassic:   ${JSON.stringify(classicRun.value)}`,
          );
        const answer = workflow.answer(classicRun.value);
        rows.push(row(workflow, classicRun.tally, agent.finish(answer), answer));
        progress(`  ${workflow.name}: ${rows.at(-1)?.codeMode.total} tokens, same answer`);
      }
    } finally {
      await facade.close();
    }
  } finally {
    await platform.stop();
  }

  const report: Report = {
    at: new Date().toISOString(),
    node: process.version,
    tokenizer: "gpt-tokenizer o200k_base",
    workflows: rows,
    fixedPrompt: {
      tools: allTools,
      servers: allServers,
      classic: allDefinitions,
      codeMode: facadeDefinitions,
      ratio: allDefinitions / facadeDefinitions,
      goal: FIXED_PROMPT_GOAL,
      pass: facadeDefinitions <= FIXED_PROMPT_GOAL,
    },
    filesystemFiles: fileCount,
    method: METHOD,
  };
  const results = new URL("./results/", import.meta.url);
  await mkdir(results, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  await writeFile(new URL("tokens.json", results), json);
  // With --json, stdout is the JSON alone (for other programs) and the table goes to stderr.
  (asJson ? process.stderr : process.stdout).write(`${formatReport(report)}\n`);
  if (asJson) process.stdout.write(json);

  const missed = [
    ...rows
      .filter((r) => r.pass === false)
      .map((r) => `${r.workflow} (${r.ratio.toFixed(1)}× < ${r.goal}×)`),
    ...(report.fixedPrompt.pass
      ? []
      : [`fixed prompt (${facadeDefinitions} > ${FIXED_PROMPT_GOAL} tokens)`]),
  ];
  if (missed.length > 0) process.stderr.write(`bench:tokens: goal missed: ${missed.join("; ")}\n`);
} finally {
  await rm(work, { recursive: true, force: true });
}

function row(workflow: Workflow, classic: Tally, codeMode: Tally, answer: string): Row {
  const ratio = classic.total / codeMode.total;
  return {
    workflow: workflow.name,
    summary: workflow.summary,
    servers: workflow.servers,
    prompt: workflow.prompt,
    search: workflow.search,
    program: workflow.program,
    answer,
    classic,
    codeMode,
    ratio,
    goal: workflow.goal ?? null,
    pass: workflow.goal === undefined ? null : ratio >= workflow.goal,
  };
}

/** The `namespace.tool(` calls of a program, for the servers its workflow uses. */
function toolsCalled(workflow: Workflow): string[] {
  const called = new Set<string>();
  for (const match of workflow.program.matchAll(/\b(\w+)\.(\w+)\(/g))
    if (workflow.servers.includes(match[1] ?? "")) called.add(match[2] ?? "");
  return [...called];
}

/** A value as JSON carries it, so an `undefined` property cannot make equal answers differ. */
function normalize(value: unknown): unknown {
  return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

function progress(line: string): void {
  process.stderr.write(`bench:tokens: ${line}\n`);
}
