// Tool policies per server: allow, approve (a person decides each call) or deny. Without a rule,
// a tool's MCP annotations decide (destructiveHint → approve, otherwise allow).
import { channels, EVERY_TOOL, POLICY_KINDS, type PolicyKind, PolicyTable } from "@turtle/core";
import { ErrorResponseSchema, notFound } from "../errors.ts";
import { projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";
import { nameParams } from "./servers.ts";

const kindOrNull = {
  type: ["string", "null"],
  enum: [...POLICY_KINDS, null],
  description: "allow, approve or deny; null removes the rule",
} as const;

export default async function policyRoutes(app: TypedInstance) {
  async function describe(projectId: string, server: string, signal: AbortSignal) {
    const rows = await app.db.toolPolicy.findMany({ where: { projectId, server } });
    const table = new PolicyTable(rows);
    const tools = await app.mcp.listTools(projectId, server, signal);
    return {
      server,
      default: rows.find((row) => row.tool === EVERY_TOOL)?.policy ?? null,
      tools: tools.map((tool) => {
        const { policy, source } = table.resolve(server, tool.name, tool.annotations);
        return { tool: tool.name, policy, source };
      }),
    };
  }

  const PoliciesSchema = {
    type: "object",
    required: ["server", "default", "tools"],
    properties: {
      server: { type: "string" },
      default: { type: ["string", "null"], description: "the server-wide rule, if any" },
      tools: {
        type: "array",
        items: {
          type: "object",
          required: ["tool", "policy", "source"],
          properties: {
            tool: { type: "string" },
            policy: { type: "string", enum: POLICY_KINDS },
            source: {
              type: "string",
              enum: ["tool", "server", "annotations"],
              description:
                "what decided: the tool's rule, the server-wide rule, or its annotations",
            },
          },
        },
      },
    },
  } as const;

  app.get(
    "/servers/:name/policies",
    {
      schema: {
        operationId: "getPolicies",
        summary: "The policy of each of a server's tools, and what decided it",
        params: nameParams,
        response: { 200: PoliciesSchema, 400: ErrorResponseSchema, 404: ErrorResponseSchema },
      },
    },
    async (request, reply) => {
      const hungUp = new AbortController();
      reply.raw.once("close", () => hungUp.abort());
      return describe(projectOf(request), request.params.name, hungUp.signal);
    },
  );

  app.put(
    "/servers/:name/policies",
    {
      config: { scope: "admin" },
      schema: {
        operationId: "setPolicies",
        summary: "Set or remove this project's policy rules for a server's tools (and its default)",
        params: nameParams,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            default: kindOrNull,
            tools: {
              type: "object",
              description: "tool name → allow, approve, deny, or null to remove the rule",
              additionalProperties: kindOrNull,
              maxProperties: 1000,
            },
          },
        },
        response: {
          200: PoliciesSchema,
          400: ErrorResponseSchema,
          403: ErrorResponseSchema,
          404: ErrorResponseSchema,
        },
      },
    },
    async (request, reply) => {
      const projectId = projectOf(request);
      const server = request.params.name;
      if ((await app.db.server.count({ where: { projectId, name: server } })) === 0) {
        throw notFound(`no server ${JSON.stringify(server)}`);
      }
      const rules: Array<[string, PolicyKind | null]> = [
        ...(request.body.default === undefined
          ? []
          : ([[EVERY_TOOL, request.body.default]] as Array<[string, PolicyKind | null]>)),
        ...Object.entries(request.body.tools ?? {}),
      ];
      await app.db.$transaction(
        rules.map(([tool, policy]) =>
          policy === null
            ? app.db.toolPolicy.deleteMany({ where: { projectId, server, tool } })
            : app.db.toolPolicy.upsert({
                where: { projectId_server_tool: { projectId, server, tool } },
                create: { projectId, server, tool, policy },
                update: { policy },
              }),
        ),
      );
      await app.redis.publish(channels(app.config.TURTLE_QUEUE).policies, projectId);
      const hungUp = new AbortController();
      reply.raw.once("close", () => hungUp.abort());
      return describe(projectId, server, hungUp.signal);
    },
  );
}
