// The printed report: the table, where the tokens go, and how they were counted.
import type { SearchArgs } from "./code-mode.ts";
import type { Tally } from "./count.ts";

export interface Row {
  workflow: string;
  summary: string;
  servers: string[];
  prompt: string;
  search: SearchArgs;
  program: string;
  /** the final answer both agents give */
  answer: string;
  classic: Tally;
  codeMode: Tally;
  ratio: number;
  goal: number | null;
  pass: boolean | null;
}

export interface Report {
  at: string;
  node: string;
  tokenizer: string;
  workflows: Row[];
  fixedPrompt: {
    tools: number;
    servers: number;
    classic: number;
    codeMode: number;
    ratio: number;
    goal: number;
    pass: boolean;
  };
  filesystemFiles: number;
  method: string;
}

export const METHOD = `How the tokens are counted

Tokens are counted with gpt-tokenizer's o200k_base encoding (the encoding of GPT-4o and later) over
the text each agent's model takes in. Both agents do the same task against the same real MCP
servers: stdio processes speaking MCP through the official SDK (four are this benchmark's own
servers over deterministic generated data, two are the published @modelcontextprotocol/server-memory
and server-filesystem). Both agents end with the same final answer text.

- Classic tool calling: on every model turn the context holds the definitions of every tool of the
  servers the task needs (their tools/list: name, description, inputSchema and outputSchema, as
  compact JSON). Each turn the model emits tool calls (counted as the JSON {name, arguments}) and
  each result enters the context (the exact text content the server returned). The classic agent
  is given every advantage: independent calls go out in parallel in one turn (a 100-item fan-out is
  3 turns: list, the 100 fetches, the answer), it uses a tool's server-side filters where there
  are some, and it reasons over the results for free. Its calls really run, straight to the
  servers over stdio (one SDK client per server).
- Code Mode (Turtle): on every turn the context holds only the tools of Turtle's MCP façade (its
  tools/list, same fields). Turn 1 calls search_tools (counted: the call and the TypeScript
  declarations it returns); turn 2 calls execute with the program (counted: the call with the
  program's text, and the answer with the result and logs); turn 3 is the answer. The program runs
  as a Turtle job against the same servers, and its result must equal the answer the classic
  agent worked out from its own results, or the benchmark fails.
- Per workflow, tokens = turns × tool definitions + task prompt + every call + every result + the
  final answer. The conversation history is not counted again on each turn, though a real agent
  sends it again with every request: counted that way the classic figure grows with the square of
  its turns and results, so this is the lower bound on both sides, and it favours the classic
  agent. System prompts and chat-format overhead are left out on both sides.
- The fixed prompt: what an agent holds on every turn before doing anything, with all the servers
  registered — every tool definition for the classic agent, the façade's tool list for Code Mode.`;

const n = (value: number) => Math.round(value).toLocaleString("en-US");

export function formatReport(report: Report): string {
  const { fixedPrompt } = report;
  const main = table(
    ["workflow", "classic tokens", "Code Mode tokens", "ratio", "goal", ""],
    [
      ...report.workflows.map((row) => [
        `${row.workflow}: ${row.summary}`,
        n(row.classic.total),
        n(row.codeMode.total),
        `${row.ratio.toFixed(1)}×`,
        row.goal === null ? "—" : `≥ ${row.goal}×`,
        row.pass === null ? "" : row.pass ? "pass" : "MISS",
      ]),
      [
        `fixed prompt: tool definitions, ${n(fixedPrompt.tools)} tools on ${fixedPrompt.servers} servers`,
        n(fixedPrompt.classic),
        n(fixedPrompt.codeMode),
        `${fixedPrompt.ratio.toFixed(1)}×`,
        `≤ ${n(fixedPrompt.goal)} tokens`,
        fixedPrompt.pass ? "pass" : "MISS",
      ],
    ],
  );
  const side = (tally: Tally) =>
    `${tally.turns} × ${n(tally.definitions)} + ${n(tally.prompt)} + ${n(tally.calls)} + ${n(tally.results)} + ${n(tally.answer)}`;
  const breakdown = table(
    [
      "workflow",
      "classic: turns × definitions + prompt + calls + results + answer",
      "tool calls",
      "Code Mode: the same",
    ],
    report.workflows.map((row) => [
      row.workflow,
      side(row.classic),
      n(row.classic.toolCalls),
      side(row.codeMode),
    ]),
  );
  return `${main}\n\nWhere the tokens go\n\n${breakdown}\n\n${report.method}\n`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) =>
    Math.max(cell.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(" | ")} |`;
  const rule = `| ${widths.map((width) => "-".repeat(width)).join(" | ")} |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}
