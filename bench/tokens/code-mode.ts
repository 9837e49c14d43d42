// The Code Mode agent: Turtle's façade tools are all it holds. It searches the tool catalog once,
// writes one program, runs it with `execute`, and answers from the result.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { callText, definitionsText, Ledger, resultText, type Tally, tokens } from "./count.ts";

export interface SearchArgs {
  query: string;
  detail?: "name" | "summary" | "full";
  servers?: string[];
  limit?: number;
}

export class Facade {
  readonly tools: Tool[];
  private readonly client: Client;
  private readonly base: string;
  private readonly key: string;

  private constructor(client: Client, tools: Tool[], base: string, key: string) {
    this.client = client;
    this.tools = tools;
    this.base = base;
    this.key = key;
  }

  static async connect(base: string, key: string): Promise<Facade> {
    const client = new Client({ name: "bench-tokens-code-mode", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL("/mcp", base), {
        requestInit: { headers: { authorization: `Bearer ${key}` } },
      }),
    );
    const { tools } = await client.listTools();
    return new Facade(client, tools, base, key);
  }

  /** The fixed prompt: the façade's tool definitions, what every Code Mode turn pays for. */
  get definitions(): number {
    return tokens(definitionsText(this.tools));
  }

  agent(prompt: string): CodeModeAgent {
    return new CodeModeAgent(this, new Ledger(this.definitions, prompt));
  }

  async call(name: string, args: Record<string, unknown>): Promise<string> {
    const result = (await this.client.callTool({ name, arguments: args }, undefined, {
      timeout: 180_000,
    })) as CallToolResult;
    const text = resultText(result);
    if (result.isError) throw new Error(`façade ${name} failed: ${text.slice(0, 2_000)}`);
    return text;
  }

  /** A job as stored: the whole result, whatever the façade's answer showed of it. */
  async job(id: string): Promise<{ status: string; result: unknown; error: unknown }> {
    const response = await fetch(new URL(`/v1/jobs/${id}`, this.base), {
      headers: { authorization: `Bearer ${this.key}` },
    });
    if (!response.ok)
      throw new Error(`GET /v1/jobs/${id}: ${response.status} ${await response.text()}`);
    return (await response.json()) as { status: string; result: unknown; error: unknown };
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

export class CodeModeAgent {
  private readonly facade: Facade;
  private readonly ledger: Ledger;

  constructor(facade: Facade, ledger: Ledger) {
    this.facade = facade;
    this.ledger = ledger;
  }

  /** Turn 1: find the tools and read their declarations. */
  async search(args: SearchArgs): Promise<string> {
    const text = await this.facade.call("search_tools", { ...args });
    this.ledger.turn([{ call: callText("search_tools", { ...args }), result: text }]);
    return text;
  }

  /** Turn 2: run the program; returns the façade's answer and the job's stored result. */
  async execute(code: string): Promise<{ text: string; result: unknown }> {
    const text = await this.facade.call("execute", { code });
    this.ledger.turn([{ call: callText("execute", { code }), result: text }]);
    const id = /\bjob ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/.exec(
      text,
    )?.[1];
    if (id === undefined)
      throw new Error(`execute answered without a job id:\n${text.slice(0, 2_000)}`);
    const job = await this.facade.job(id);
    if (job.status !== "succeeded")
      throw new Error(
        `job ${id} ${job.status}: ${JSON.stringify(job.error)}\n${text.slice(0, 2_000)}`,
      );
    return { text, result: job.result };
  }

  finish(answer: string): Tally {
    return this.ledger.finish(answer);
  }
}
