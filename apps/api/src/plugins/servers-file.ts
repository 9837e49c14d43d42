import { loadMcpServersFile } from "@turtle/bindings";
import { saveServer } from "@turtle/core";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

/**
 * Registers (creates or replaces) every server of an `mcpServers` file at start. An invalid file
 * stops the start with a message naming the server and field.
 */
export default fp(
  async function serversFile(app: FastifyInstance, options: { path: string }) {
    const servers = await loadMcpServersFile(options.path);
    for (const [name, entry] of Object.entries(servers)) {
      await saveServer(app.db, app.secrets, name, entry);
      await app.mcp.changed(name);
    }
    app.log.info({ servers: Object.keys(servers) }, `registered servers from ${options.path}`);
  },
  { name: "servers-file", dependencies: ["db", "mcp-pool"] },
);
