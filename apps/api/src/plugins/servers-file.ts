import { isStdioServerConfig, loadMcpServersFile } from "@turtle/bindings";
import { DEFAULT_PROJECT_ID, saveServer, stdioRefusal } from "@turtle/core";
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
    // The operator's own file, but the same rule as the API's: an operator who took stdio servers
    // away from their own project does not get them back through the file.
    const stdio = Object.entries(servers)
      .filter(([, entry]) => isStdioServerConfig(entry))
      .map(([name]) => name);
    if (stdio.length > 0) {
      const project = await app.db.project.findUnique({
        where: { id: DEFAULT_PROJECT_ID },
        select: { allowStdioServers: true },
      });
      const refusal = stdioRefusal(project);
      if (refusal !== undefined) {
        throw new Error(`${options.path}: stdio servers ${stdio.join(", ")}: ${refusal}`);
      }
    }
    for (const [name, entry] of Object.entries(servers)) {
      await saveServer(app.db, app.secrets, { projectId: DEFAULT_PROJECT_ID, name }, entry);
      await app.mcp.changed(DEFAULT_PROJECT_ID, name);
    }
    app.log.info({ servers: Object.keys(servers) }, `registered servers from ${options.path}`);
  },
  { name: "servers-file", dependencies: ["db", "mcp-pool"] },
);
