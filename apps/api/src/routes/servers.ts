// The MCP server registry. POST registers a new name (409 if taken); PUT creates or replaces.
// Secret `env` and `headers` values are stored apart and never answered: only their names are.
import {
  ConfigError,
  isStdioServerConfig,
  type McpServerConfig,
  parseMcpServersFile,
  ServerNameSchema,
  toIdentifier,
} from "@turtle/bindings";
import { channels, saveServer, serverData, serverView, stdioRefusal } from "@turtle/core";
import {
  ApiError,
  badRequest,
  conflict,
  ErrorResponseSchema,
  isUniqueViolation,
  notFound,
} from "../errors.ts";
import { projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

type Entry = Record<string, unknown>;

const entryProperties = {
  command: { description: "stdio server: the program to start" },
  args: { description: "stdio server: its arguments (strings)" },
  env: { description: "stdio server: environment variables (secret: never shown)" },
  cwd: { description: "stdio server: its working directory" },
  url: { description: "HTTP server: its URL (Streamable HTTP, or SSE)" },
  headers: { description: "HTTP server: request headers (secret: never shown)" },
  type: { description: '"stdio", or for HTTP "http", "streamable-http" or "sse"' },
} as const;

const ServerSchema = {
  type: "object",
  required: ["name", "transport", "createdAt", "updatedAt"],
  properties: {
    name: { type: "string" },
    transport: { type: "string", enum: ["stdio", "http"] },
    command: { type: "string" },
    args: { type: "array", items: { type: "string" } },
    cwd: { type: "string" },
    url: { type: "string" },
    type: { type: "string" },
    env: { type: "array", items: { type: "string" }, description: "variable names only" },
    headers: { type: "array", items: { type: "string" }, description: "header names only" },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
  },
} as const;

/** `:name` in a server's routes (policies.ts too). */
export const nameParams = {
  type: "object",
  required: ["name"],
  properties: {
    name: {
      type: "string",
      minLength: 1,
      maxLength: 64,
      pattern: "^[A-Za-z0-9_.-]+$",
      description: "a server's name: 1 to 64 letters, digits, '_', '.' or '-'",
    },
  },
} as const;

/** One `mcpServers` entry, validated as a file's would be, with messages naming body fields. */
function parseEntry(name: string, entry: Entry): McpServerConfig {
  const named = ServerNameSchema.safeParse(name);
  if (!named.success) {
    const issue = named.error.issues[0];
    throw badRequest(
      "invalid_server",
      issue?.code === "custom"
        ? `body.name ${issue.message}`
        : `body.name ${JSON.stringify(name)} ${issue?.message ?? "is invalid"}: use 1-64 characters of A-Z a-z 0-9 _ . -`,
    );
  }
  try {
    const parsed = parseMcpServersFile({ mcpServers: Object.fromEntries([[name, entry]]) })[name];
    if (parsed === undefined) throw new ConfigError(`mcpServers.${name}: is invalid`);
    return parsed;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const prefix = `mcpServers.${name}`;
    const message = error.message.startsWith(prefix)
      ? `body${error.message.slice(prefix.length)}`
      : error.message;
    throw badRequest("invalid_server", message);
  }
}

export default async function serverRoutes(app: TypedInstance) {
  /** A stdio server is a command on Turtle's hosts: only projects the operator allows have one. */
  async function checkTransport(projectId: string, config: McpServerConfig): Promise<void> {
    if (!isStdioServerConfig(config)) return;
    const project = await app.db.project.findUnique({
      where: { id: projectId },
      select: { allowStdioServers: true },
    });
    const refusal = stdioRefusal(project);
    if (refusal !== undefined) throw new ApiError(403, "stdio_not_allowed", refusal);
  }

  /**
   * Two servers whose names make one namespace (`a-b` and `a_b`) would leave programs unable to
   * tell them apart: the project's catalog refuses them, so every job using either would fail.
   * Refused here instead, naming the other server.
   */
  async function checkNamespace(projectId: string, name: string): Promise<void> {
    const namespace = toIdentifier(name);
    const rows = await app.db.server.findMany({ where: { projectId }, select: { name: true } });
    const other = rows.find((row) => row.name !== name && toIdentifier(row.name) === namespace);
    if (other === undefined) return;
    throw conflict(
      "namespace_taken",
      `"${name}" would be the namespace ${namespace} in programs, which the registered server "${other.name}" already is: choose another name, or PUT /v1/servers/${other.name} to replace that server`,
    );
  }

  const errors = {
    400: ErrorResponseSchema,
    403: ErrorResponseSchema,
    404: ErrorResponseSchema,
    409: ErrorResponseSchema,
  };

  app.post(
    "/servers",
    {
      config: { scope: "admin" },
      schema: {
        operationId: "registerServer",
        summary: "Register an MCP server (one mcpServers entry plus its name)",
        body: {
          type: "object",
          required: ["name"],
          properties: {
            name: {
              type: "string",
              description: "the server's name, also its namespace in programs",
            },
            ...entryProperties,
          },
        },
        response: { 201: ServerSchema, ...errors },
      },
    },
    async (request, reply) => {
      const projectId = projectOf(request);
      const { name, ...entry } = request.body;
      const config = parseEntry(name, entry);
      await checkTransport(projectId, config);
      await checkNamespace(projectId, name);
      const data = serverData(app.secrets, { projectId, name }, config);
      try {
        const row = await app.db.server.create({ data: { projectId, name, ...data } });
        await app.mcp.changed(projectId, name);
        return reply.code(201).send(serverView(row));
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        throw conflict(
          "server_exists",
          `a server named "${name}" is already registered: PUT /v1/servers/${name} replaces it, DELETE removes it`,
        );
      }
    },
  );

  app.put(
    "/servers/:name",
    {
      config: { scope: "admin" },
      schema: {
        operationId: "replaceServer",
        summary: "Register or replace an MCP server",
        params: nameParams,
        body: {
          type: "object",
          properties: {
            name: { type: "string", description: "optional; must match the path" },
            ...entryProperties,
          },
        },
        response: { 200: ServerSchema, 201: ServerSchema, ...errors },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const { name: bodyName, ...entry } = request.body;
      if (bodyName !== undefined && bodyName !== name) {
        throw badRequest(
          "invalid_server",
          `body.name ${JSON.stringify(bodyName)} differs from the name in the path ("${name}"): drop it or make them equal`,
        );
      }
      const projectId = projectOf(request);
      const config = parseEntry(name, entry);
      await checkTransport(projectId, config);
      await checkNamespace(projectId, name);
      const existed = (await app.db.server.count({ where: { projectId, name } })) > 0;
      const row = await saveServer(app.db, app.secrets, { projectId, name }, config);
      await app.mcp.changed(projectId, name);
      return reply.code(existed ? 200 : 201).send(serverView(row));
    },
  );

  app.get(
    "/servers",
    {
      schema: {
        operationId: "listServers",
        summary: "List registered MCP servers",
        response: {
          200: {
            type: "object",
            required: ["servers"],
            properties: { servers: { type: "array", items: ServerSchema } },
          },
        },
      },
    },
    async (request) => {
      const rows = await app.db.server.findMany({
        where: { projectId: projectOf(request) },
        orderBy: { name: "asc" },
      });
      return { servers: rows.map(serverView) };
    },
  );

  app.get(
    "/servers/:name/tools",
    {
      schema: {
        operationId: "listServerTools",
        summary: "List a server's tools, live",
        params: nameParams,
        response: {
          200: {
            type: "object",
            required: ["server", "tools"],
            properties: {
              server: { type: "string" },
              tools: {
                type: "array",
                items: {
                  type: "object",
                  required: ["name", "inputSchema"],
                  properties: {
                    name: { type: "string" },
                    title: { type: "string" },
                    description: { type: "string" },
                    inputSchema: {},
                    outputSchema: {},
                    annotations: {},
                  },
                },
              },
            },
          },
          404: ErrorResponseSchema,
          502: ErrorResponseSchema,
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const hungUp = new AbortController();
      reply.raw.once("close", () => hungUp.abort());
      return {
        server: name,
        tools: await app.mcp.listTools(projectOf(request), name, hungUp.signal),
      };
    },
  );

  app.delete(
    "/servers/:name",
    {
      config: { scope: "admin" },
      schema: {
        operationId: "deleteServer",
        summary: "Remove an MCP server (and its tool policies)",
        params: nameParams,
        response: { 204: { type: "null" }, 404: ErrorResponseSchema },
      },
    },
    async (request, reply) => {
      const projectId = projectOf(request);
      const { name } = request.params;
      // Its tool policies go with it: a server registered later under the name starts afresh.
      const [deleted] = await app.db.$transaction([
        app.db.server.deleteMany({ where: { projectId, name } }),
        app.db.toolPolicy.deleteMany({ where: { projectId, server: name } }),
      ]);
      if (deleted.count === 0) throw notFound(`no MCP server is registered as "${name}"`);
      await app.mcp.changed(projectId, name);
      await app.redis.publish(channels(app.config.TURTLE_QUEUE).policies, projectId);
      return reply.code(204).send(null);
    },
  );
}
