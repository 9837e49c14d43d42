// The program API as TypeScript declarations: the text an agent puts in front of its LLM.
import { ErrorResponseSchema } from "../errors.ts";
import { projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

export default async function typeRoutes(app: TypedInstance) {
  app.get(
    "/types",
    {
      schema: {
        operationId: "getTypes",
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
      const projectId = projectOf(request);
      const names = await app.catalogs.names(projectId, asked, "query.servers");
      const hungUp = new AbortController();
      reply.raw.once("close", () => hungUp.abort());
      const declarations = await app.catalogs.declarations(projectId, names, hungUp.signal);
      return reply.type("text/plain; charset=utf-8").send(declarations);
    },
  );
}
