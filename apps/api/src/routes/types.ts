// The program API as TypeScript declarations: the text an agent puts in front of its LLM.
import { buildCatalog, renderDeclarations } from "@turtle/bindings";
import type { FastifyInstance } from "fastify";
import { ErrorResponseSchema } from "../errors.ts";
import { checkServers } from "../jobs/lifecycle.ts";

export default async function typeRoutes(app: FastifyInstance) {
  app.get<{ Querystring: { servers?: string } }>(
    "/types",
    {
      schema: {
        summary: "TypeScript declarations of the servers' tools, as programs see them",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            servers: {
              type: "string",
              description: "comma-separated server names (omit for every registered server)",
            },
          },
        },
        response: {
          200: { type: "string", description: "text/plain TypeScript declarations" },
          400: ErrorResponseSchema,
          409: ErrorResponseSchema,
          502: ErrorResponseSchema,
        },
      },
    },
    async (request, reply) => {
      const asked = request.query.servers
        ?.split(",")
        .map((name) => name.trim())
        .filter((name) => name !== "");
      let names: string[];
      if (asked === undefined || asked.length === 0) {
        const rows = await app.db.server.findMany({
          select: { name: true },
          orderBy: { name: "asc" },
        });
        names = rows.map((row) => row.name);
      } else {
        names = [...new Set(asked)];
        await checkServers(app, names, "query.servers");
      }
      const hungUp = new AbortController();
      reply.raw.once("close", () => hungUp.abort());
      const servers = await Promise.all(
        names.map(async (name) => ({ name, tools: await app.mcp.listTools(name, hungUp.signal) })),
      );
      return reply
        .type("text/plain; charset=utf-8")
        .send(renderDeclarations(buildCatalog(servers)));
    },
  );
}
