// The classic tool-calling agent: every tool definition of the servers a task needs in context
// on every turn, each call's result in full. Calls go straight to the servers over stdio.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  getDefaultEnvironment,
  StdioClientTransport,
} from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { unwrapToolResult } from "@turtle/bindings";
import { callText, definitionsText, Ledger, resultText, type Tally, tokens } from "./count.ts";
import type { ServerEntry } from "./servers.ts";

export interface Call {
  server: string;
  tool: string;
  args: Record<string, unknown>;
}

export class ClassicServers {
  private readonly clients: Map<string, Client>;
  readonly tools: Map<string, Tool[]>;

  private constructor(clients: Map<string, Client>, tools: Map<string, Tool[]>) {
    this.clients = clients;
    this.tools = tools;
  }

  static async connect(entries: Record<string, ServerEntry>): Promise<ClassicServers> {
    const clients = new Map<string, Client>();
    const tools = new Map<string, Tool[]>();
    try {
      for (const [name, entry] of Object.entries(entries)) {
        const client = new Client({ name: "bench-tokens-classic", version: "1.0.0" });
        await client.connect(
          new StdioClientTransport({
            command: entry.command,
            args: entry.args,
            env: { ...getDefaultEnvironment(), ...entry.env },
            stderr: "ignore",
          }),
        );
        clients.set(name, client);
        const listed: Tool[] = [];
        let cursor: string | undefined;
        do {
          const page = await client.listTools(cursor === undefined ? {} : { cursor });
          listed.push(...page.tools);
          cursor = page.nextCursor;
        } while (cursor !== undefined);
        tools.set(name, listed);
      }
    } catch (error) {
      await Promise.all([...clients.values()].map((client) => client.close()));
      throw error;
    }
    return new ClassicServers(clients, tools);
  }

  /** An agent holding the definitions of these servers' tools. */
  agent(servers: string[], prompt: string): ClassicAgent {
    const definitions = tokens(definitionsText(servers.flatMap((name) => this.toolsOf(name))));
    return new ClassicAgent(this, new Ledger(definitions, prompt));
  }

  toolsOf(server: string): Tool[] {
    const tools = this.tools.get(server);
    if (tools === undefined) throw new Error(`no server "${server}"`);
    return tools;
  }

  async call(call: Call): Promise<CallToolResult> {
    const client = this.clients.get(call.server);
    if (client === undefined) throw new Error(`no server "${call.server}"`);
    const result = (await client.callTool({ name: call.tool, arguments: call.args }, undefined, {
      timeout: 120_000,
    })) as CallToolResult;
    if (result.isError)
      throw new Error(`${call.server}.${call.tool} failed: ${resultText(result).slice(0, 500)}`);
    return result;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((client) => client.close()));
  }
}

export class ClassicAgent {
  private readonly servers: ClassicServers;
  private readonly ledger: Ledger;

  constructor(servers: ClassicServers, ledger: Ledger) {
    this.servers = servers;
    this.ledger = ledger;
  }

  /**
   * One model turn: the calls go out together (as parallel tool calls do) and every result
   * enters the context. Returns each result as a program would see it (the same contract), for
   * the agent's reasoning — which the benchmark does in plain code.
   */
  async turn(calls: Call[]): Promise<unknown[]> {
    const results = await Promise.all(calls.map((call) => this.servers.call(call)));
    this.ledger.turn(
      calls.map((call, index) => ({
        call: callText(call.tool, call.args),
        result: resultText(results[index] as CallToolResult),
      })),
    );
    return results.map((result, index) => {
      const call = calls[index] as Call;
      return unwrapToolResult(call.server, call.tool, result);
    });
  }

  /** One call in a turn of its own. */
  async one<T>(server: string, tool: string, args: Record<string, unknown>): Promise<T> {
    const [value] = await this.turn([{ server, tool, args }]);
    return value as T;
  }

  finish(answer: string): Tally {
    return this.ledger.finish(answer);
  }
}
