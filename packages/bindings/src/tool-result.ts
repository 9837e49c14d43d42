import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { ToolError } from "./errors.ts";

/**
 * Turns a `tools/call` result into the value a program sees (the contract in DESIGN.md):
 * `structuredContent` when present; else the text blocks joined with newlines, parsed as JSON
 * when that parses, else the text itself; `null` for no content at all. Non-text content
 * (images, audio, resources) is returned as the content array unchanged. `isError` results
 * throw a `ToolError` carrying the tool's own text.
 */
export function unwrapToolResult(
  server: string,
  tool: string,
  result: CallToolResult,
  secrets: readonly string[] = [],
): unknown {
  if (result.isError) {
    const text = textOf(result.content);
    const message = text || `tool "${tool}" reported an error without a message`;
    throw new ToolError(server, tool, message, { secrets });
  }
  if (result.structuredContent !== undefined) return result.structuredContent;
  const content = result.content;
  if (content.length === 0) return null;
  if (!content.every((block) => block.type === "text")) return content;
  const text = textOf(content);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function textOf(content: CallToolResult["content"]): string {
  let text = "";
  for (const block of content) {
    if (block.type !== "text") continue;
    text = text === "" ? block.text : `${text}\n${block.text}`;
  }
  return text;
}
