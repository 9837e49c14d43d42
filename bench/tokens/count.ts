// What a model's context takes in, in o200k_base tokens (the encoding of GPT-4o and later).
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { countTokens } from "gpt-tokenizer/encoding/o200k_base";

export function tokens(text: string): number {
  return countTokens(text);
}

/** Tool definitions as an agent hands them to its model: compact JSON of the tools/list fields. */
export function definitionsText(tools: Tool[]): string {
  return JSON.stringify(
    tools.map(({ name, description, inputSchema, outputSchema }) => ({
      name,
      description,
      inputSchema,
      ...(outputSchema === undefined ? {} : { outputSchema }),
    })),
  );
}

/** A tool call as the model emits it. */
export function callText(name: string, args: Record<string, unknown>): string {
  return JSON.stringify({ name, arguments: args });
}

/** What a tool result puts in the context: its text content, blocks joined by newlines. */
export function resultText(result: CallToolResult): string {
  return result.content
    .map((block) => (block.type === "text" ? block.text : JSON.stringify(block)))
    .join("\n");
}

/** One agent's bill for one workflow. */
export interface Tally {
  turns: number;
  /** the tool definitions, paid on every turn */
  definitions: number;
  prompt: number;
  calls: number;
  results: number;
  answer: number;
  total: number;
  toolCalls: number;
}

export class Ledger {
  private turnCount = 0;
  private callTokens = 0;
  private resultTokens = 0;
  private callCount = 0;

  private readonly definitions: number;
  private readonly prompt: string;

  constructor(definitions: number, prompt: string) {
    this.definitions = definitions;
    this.prompt = prompt;
  }

  /** One model turn that emits tool calls, and their results coming back. */
  turn(exchanges: Array<{ call: string; result: string }>): void {
    this.turnCount++;
    for (const { call, result } of exchanges) {
      this.callTokens += tokens(call);
      this.resultTokens += tokens(result);
      this.callCount++;
    }
  }

  /** The last turn: the final answer, no tool calls. */
  finish(answer: string): Tally {
    const turns = this.turnCount + 1;
    const prompt = tokens(this.prompt);
    const answerTokens = tokens(answer);
    return {
      turns,
      definitions: this.definitions,
      prompt,
      calls: this.callTokens,
      results: this.resultTokens,
      answer: answerTokens,
      total: turns * this.definitions + prompt + this.callTokens + this.resultTokens + answerTokens,
      toolCalls: this.callCount,
    };
  }
}
