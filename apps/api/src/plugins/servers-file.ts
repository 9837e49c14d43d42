import { loadMcpServersFile } from "@turtle/bindings";
import { DEFAULT_PROJECT_ID, saveServer } from "@turtle/core";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

/**
 * Registers (creates or replaces) every server of an `mcpServers` file at start, in the
 * operator's (default) project. An invalid file stops the start with a message naming the
 * server and field.
 */
export default fp(
  async function serversFile(app: FastifyInstance, options: { path: string }) {
    const servers = await loadMcpServersFile(options.path);
    for (const [name, entry] of Object.entries(servers)) {
      await saveServer(app.db, app.secrets, { projectId: DEFAULT_PROJECT_ID, name }, entry);
      await app.mcp.changed(DEFAULT_PROJECT_ID, name);
    }
    app.log.info({ servers: Object.keys(servers) }, `registered servers from ${options.path}`);
  },
  { name: "servers-file", dependencies: ["db", "mcp-pool"] },
);
