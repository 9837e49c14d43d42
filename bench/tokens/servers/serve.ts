// The stdio MCP server shell the benchmark's own servers share: a fixed tool list, each tool a
// function of its arguments whose value is answered as compact JSON text (and as
// structuredContent when the tool declares an outputSchema), the way most API-wrapping servers do.
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";

export type Args = Record<string, unknown>;

/** A JSON Schema of an object, as written in the servers (`as const` literals welcome). */
export interface ObjectSchema {
  readonly type: "object";
  readonly [keyword: string]: unknown;
}

export interface ToolSpec {
  tool: {
    name: string;
    description: string;
    inputSchema: ObjectSchema;
    outputSchema?: ObjectSchema;
  };
  run: (args: Args) => unknown;
}

/** A bad argument: answered as an `isError` result with this message, as real servers do. */
export class ToolInputError extends Error {
  override name = "ToolInputError";
}

export async function serve(name: string, specs: ToolSpec[]): Promise<void> {
  const byName = new Map(specs.map((spec) => [spec.tool.name, spec]));
  const server = new Server({ name, version: "1.0.0" }, { capabilities: { tools: {} } });
  const tools = specs.map((spec) => spec.tool as Tool);
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
  server.setRequestHandler(CallToolRequestSchema, async (request): Promise<CallToolResult> => {
    const spec = byName.get(request.params.name);
    if (spec === undefined)
      throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${request.params.name}`);
    try {
      const value = await spec.run(request.params.arguments ?? {});
      const text = JSON.stringify(value);
      return spec.tool.outputSchema === undefined
        ? { content: [{ type: "text", text }] }
        : {
            content: [{ type: "text", text }],
            structuredContent: value as Record<string, unknown>,
          };
    } catch (error) {
      if (!(error instanceof ToolInputError)) throw error;
      return { content: [{ type: "text", text: error.message }], isError: true };
    }
  });
  await server.connect(new StdioServerTransport());
  process.stdin.on("end", () => process.exit(0));
}

/** Argument readers that answer a wrong type with a message naming the argument. */
export function stringArg(args: Args, name: string, fallback?: string): string {
  const value = args[name] ?? fallback;
  if (typeof value !== "string") throw new ToolInputError(`"${name}" must be a string`);
  return value;
}

export function optionalString(args: Args, name: string): string | undefined {
  return args[name] === undefined ? undefined : stringArg(args, name);
}

export function intArg(args: Args, name: string, fallback: number, max?: number): number {
  const value = args[name] ?? fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
    throw new ToolInputError(`"${name}" must be a non-negative integer`);
  if (max !== undefined && value > max)
    throw new ToolInputError(`"${name}" must be at most ${max}`);
  return value;
}
