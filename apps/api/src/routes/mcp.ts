// The MCP façade over Streamable HTTP at /mcp, behind the same API key as the REST routes. It is
// stateless: every POST gets a fresh façade server and transport, so any API instance can answer
// any request and nothing is kept between them. Answers are plain JSON (no SSE stream); there is
// no server-to-client stream to open (GET) or session to end (DELETE).
import type { IncomingMessage } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createFacade } from "../mcp/facade.ts";
import { authOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

const notAllowed = {
  jsonrpc: "2.0",
  error: {
    code: -32000,
    message: "Method not allowed: this MCP endpoint is stateless; send JSON-RPC requests with POST",
  },
  id: null,
};

/** Sets the Accept header both as Node parsed it and in the raw list other readers rebuild from. */
function setAccept(raw: IncomingMessage, value: string): void {
  raw.headers.accept = value;
  const at = raw.rawHeaders.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === "accept");
  if (at === -1) raw.rawHeaders.push("Accept", value);
  else raw.rawHeaders[at + 1] = value;
}

export default async function mcpRoutes(app: TypedInstance) {
  app.post(
    "/mcp",
    {
      // Searching and reading jobs need `read`; the execute tool checks for `submit` itself.
      config: { scope: "read" },
      schema: {
        operationId: "sendMcpRequest",
        summary: "MCP over Streamable HTTP: the tools search_tools, execute and get_job",
        description:
          "JSON-RPC requests of the Model Context Protocol (stateless; JSON answers). Connect any MCP client with the API key as a bearer token.",
      },
    },
    async (request, reply) => {
      const server = createFacade(app, authOf(request));
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      reply.hijack();
      reply.raw.once("close", () => {
        transport.close().catch(() => {});
        server.close().catch(() => {});
      });
      // The transport insists on clients accepting both JSON and an event stream, though this
      // endpoint only ever answers with JSON: a client that accepts just JSON (or anything) is
      // served rather than refused with 406.
      const accept = request.raw.headers.accept ?? "";
      if (!(accept.includes("application/json") && accept.includes("text/event-stream"))) {
        setAccept(request.raw, "application/json, text/event-stream");
      }
      try {
        await server.connect(transport);
        await transport.handleRequest(request.raw, reply.raw, request.body);
      } catch (error) {
        request.log.error({ err: error }, "MCP request failed");
        if (!reply.raw.headersSent) {
          reply.raw.writeHead(500, { "content-type": "application/json" });
          reply.raw.end(
            JSON.stringify({
              jsonrpc: "2.0",
              error: { code: -32603, message: `internal error (request ${request.id})` },
              id: null,
            }),
          );
        }
      }
    },
  );
  for (const method of ["GET", "DELETE"] as const) {
    app.route({
      method,
      url: "/mcp",
      schema: { hide: true },
      handler: async (_request, reply) => reply.code(405).header("allow", "POST").send(notAllowed),
    });
  }
}
