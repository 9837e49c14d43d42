// The MCP servers the workflows use, as `mcpServers` entries. Both agents get the same servers;
// each side has its own copy of the memory graph, since the workflows write to it.
import { join } from "node:path";
import { ROOT } from "../../scripts/processes.ts";

export interface ServerEntry {
  command: string;
  args: string[];
  env?: Record<string, string>;
}

/** Where our own servers live: confined servers see it only when the operator lists it. */
export const SERVERS_DIR = join(ROOT, "bench/tokens/servers");

const own = (file: string): ServerEntry => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, file)],
});

export function serverEntries(paths: {
  memoryFile: string;
  projectRoot: string;
}): Record<string, ServerEntry> {
  const packaged = (name: string) =>
    join(ROOT, "node_modules/@modelcontextprotocol", name, "dist/index.js");
  return {
    sheets: own("sheets.ts"),
    helpdesk: own("helpdesk.ts"),
    crm: own("crm.ts"),
    saas: own("saas.ts"),
    memory: {
      command: process.execPath,
      args: [packaged("server-memory")],
      env: { MEMORY_FILE_PATH: paths.memoryFile },
    },
    filesystem: {
      command: process.execPath,
      args: [packaged("server-filesystem"), paths.projectRoot],
    },
  };
}
