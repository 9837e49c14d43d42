// The `mcpServers` file users already keep for Claude Desktop, Cursor and friends. Unknown keys
// (`disabled`, `autoApprove`, …) are tolerated and dropped so existing files load unchanged.
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { serverNameProblem } from "./identifiers.ts";

/** A server's name: also its namespace in programs, so it may not shadow what is there. */
export const ServerNameSchema = z
  .string()
  .min(1, "must not be empty")
  .max(64, "must be at most 64 characters")
  .regex(/^[A-Za-z0-9_.-]+$/, "may only contain letters, digits, '_', '.' and '-'")
  .superRefine((name, context) => {
    const problem = serverNameProblem(name);
    if (problem !== undefined) {
      context.addIssue({
        code: "custom",
        message: `${problem}; a server's name is its namespace in programs: choose another`,
      });
    }
  });

const StringMapSchema = z.record(z.string(), z.string({ error: "must be a string" }));

export const StdioServerConfigSchema = z.object({
  type: z.literal("stdio").optional(),
  command: z.string({ error: "must be a string" }).min(1, "must not be empty"),
  args: z.array(z.string({ error: "must be a string" }), { error: "must be an array" }).optional(),
  env: StringMapSchema.optional(),
  cwd: z.string({ error: "must be a string" }).optional(),
});
export type StdioServerConfig = z.infer<typeof StdioServerConfigSchema>;

export const HttpServerConfigSchema = z.object({
  /** `http`/`streamable-http` pins Streamable HTTP, `sse` pins the legacy SSE transport. */
  type: z
    .enum(["http", "streamable-http", "sse"], {
      error: 'must be "http", "streamable-http" or "sse"',
    })
    .optional(),
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  headers: StringMapSchema.optional(),
});
export type HttpServerConfig = z.infer<typeof HttpServerConfigSchema>;

export const McpServerConfigSchema = z.union([StdioServerConfigSchema, HttpServerConfigSchema]);
export type McpServerConfig = z.infer<typeof McpServerConfigSchema>;

export const McpServersFileSchema = z.object({
  mcpServers: z.record(ServerNameSchema, McpServerConfigSchema),
});
export type McpServersFile = z.infer<typeof McpServersFileSchema>;

export function isStdioServerConfig(config: McpServerConfig): config is StdioServerConfig {
  return "command" in config;
}

/**
 * A server's secret values, as its words might quote them: its `env` values, or its `headers`
 * values and each of their words (a server may echo `Bearer <token>`, or the token alone).
 */
export function secretValues(config: McpServerConfig): string[] {
  if (isStdioServerConfig(config)) return Object.values(config.env ?? {});
  return Object.values(config.headers ?? {}).flatMap((value) => [value, ...value.split(/\s+/)]);
}

/**
 * Validates a parsed `mcpServers` document. Each server is checked on its own so the error names
 * the server and field (`mcpServers.github: needs either "command" or "url"`) instead of zod's
 * report of every union branch.
 */
export function parseMcpServersFile(value: unknown): Record<string, McpServerConfig> {
  if (!isPlainObject(value) || !("mcpServers" in value)) {
    throw new ConfigError('expected a JSON object with an "mcpServers" object');
  }
  const entries = value.mcpServers;
  if (!isPlainObject(entries)) {
    throw new ConfigError("mcpServers: must be an object mapping server names to servers");
  }
  const servers: Record<string, McpServerConfig> = {};
  for (const [name, raw] of Object.entries(entries)) {
    const nameResult = ServerNameSchema.safeParse(name);
    if (!nameResult.success) {
      const issue = nameResult.error.issues[0];
      throw new ConfigError(
        issue?.code === "custom"
          ? `mcpServers: server name ${issue.message}`
          : `mcpServers: server name ${JSON.stringify(name)} ${firstMessage(nameResult.error)} (allowed: 1-64 characters of A-Z a-z 0-9 _ . -)`,
      );
    }
    servers[name] = parseServer(name, raw);
  }
  return servers;
}

/**
 * Reads and validates an `mcpServers` file. Stdio servers run in the file's directory unless
 * they set `cwd` (a relative `cwd` is taken from the file's directory too), so relative commands
 * in the file mean what they say.
 */
export async function loadMcpServersFile(path: string): Promise<Record<string, McpServerConfig>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(`${path}: cannot read: ${errorText(error)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: invalid JSON: ${errorText(error)}`);
  }
  let servers: Record<string, McpServerConfig>;
  try {
    servers = parseMcpServersFile(value);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${path}: ${error.message}`);
    throw error;
  }
  const base = dirname(resolve(path));
  for (const [name, config] of Object.entries(servers)) {
    if (isStdioServerConfig(config)) {
      servers[name] = { ...config, cwd: resolve(base, config.cwd ?? ".") };
    }
  }
  return servers;
}

function parseServer(name: string, raw: unknown): McpServerConfig {
  const at = `mcpServers.${name}`;
  if (!isPlainObject(raw)) throw new ConfigError(`${at}: must be an object`);
  const hasCommand = "command" in raw;
  const hasUrl = "url" in raw;
  if (hasCommand && hasUrl) {
    throw new ConfigError(`${at}: has both "command" and "url"; use one`);
  }
  if (!hasCommand && !hasUrl) {
    throw new ConfigError(`${at}: needs either "command" or "url"`);
  }
  const schema = hasCommand ? StdioServerConfigSchema : HttpServerConfigSchema;
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.map(String).join(".") ?? "";
  throw new ConfigError(`${at}${path ? `.${path}` : ""}: ${issue?.message ?? "invalid"}`);
}

function firstMessage(error: z.ZodError): string {
  return error.issues[0]?.message ?? "is invalid";
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
