import { isStdioServerConfig, type McpServerConfig, type StdioSandbox } from "@turtle/bindings";
import type { Db, Prisma, Server } from "@turtle/db";
import type { Config } from "./config.ts";
import { type SecretBox, SecretsError, type ServerKey, type ServerSecrets } from "./secrets.ts";

/**
 * A server as the API shows it: env variable and header names, never their values. (A type
 * alias, not an interface: a response schema's type allows extra keys, which only an alias can be
 * assigned to.)
 */
export type ServerView = {
  name: string;
  transport: "stdio" | "http";
  command?: string;
  args?: string[];
  cwd?: string;
  url?: string;
  type?: string;
  env?: string[];
  headers?: string[];
  createdAt: string;
  updatedAt: string;
};

type PublicConfig = Omit<McpServerConfig, "env" | "headers"> & {
  envNames?: string[];
  headerNames?: string[];
};

export function splitSecrets(config: McpServerConfig): {
  config: PublicConfig;
  secrets: ServerSecrets;
} {
  if (isStdioServerConfig(config)) {
    const { env, ...rest } = config;
    return {
      config: env === undefined ? rest : { ...rest, envNames: Object.keys(env) },
      secrets: env === undefined ? {} : { env },
    };
  }
  const { headers, ...rest } = config;
  return {
    config: headers === undefined ? rest : { ...rest, headerNames: Object.keys(headers) },
    secrets: headers === undefined ? {} : { headers },
  };
}

/** A registration's whole entry, its secrets opened: for MCP clients only. */
export function joinSecrets(
  row: Pick<Server, "projectId" | "name" | "config" | "secrets">,
  box: SecretBox,
): McpServerConfig {
  const { envNames: _env, headerNames: _headers, ...config } = row.config as PublicConfig;
  const secrets = box.open(row, row.secrets);
  return { ...config, ...secrets } as McpServerConfig;
}

export function serverView(row: Server): ServerView {
  const config = row.config as PublicConfig & Record<string, unknown>;
  const stdio = "command" in config;
  return {
    name: row.name,
    transport: stdio ? "stdio" : "http",
    ...(stdio
      ? {
          command: config.command as string,
          args: (config.args as string[] | undefined) ?? [],
          ...(config.cwd === undefined ? {} : { cwd: config.cwd as string }),
          env: config.envNames ?? [],
        }
      : {
          url: config.url as string,
          ...(config.type === undefined ? {} : { type: config.type as string }),
          headers: config.headerNames ?? [],
        }),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** What a registration stores: its public part, and its secrets sealed. */
export function serverData(box: SecretBox, server: ServerKey, entry: McpServerConfig) {
  const { config, secrets } = splitSecrets(entry);
  return {
    config: config as Prisma.InputJsonValue,
    secrets: box.seal(server, secrets) as unknown as Prisma.InputJsonValue,
  };
}

/** Creates or replaces a project's registration. */
export async function saveServer(
  db: Db,
  box: SecretBox,
  server: ServerKey,
  entry: McpServerConfig,
): Promise<Server> {
  const data = serverData(box, server, entry);
  return db.server.upsert({
    where: { projectId_name: server },
    create: { ...server, ...data },
    update: data,
  });
}

/**
 * Every server a project registered, its full entry, secrets included: for the workers' MCP
 * clients only.
 */
/**
 * A project's servers as client configurations, their secrets opened. A server whose secrets do
 * not open (sealed with a key this process lacks, or altered) is in `unopened` with why, not in
 * `configs`: it fails only the jobs that use it.
 */
export async function loadServerConfigs(
  db: Db,
  box: SecretBox,
  projectId: string,
): Promise<{ configs: Record<string, McpServerConfig>; unopened: Record<string, SecretsError> }> {
  const rows = await db.server.findMany({ where: { projectId }, orderBy: { name: "asc" } });
  const configs: Record<string, McpServerConfig> = Object.create(null);
  const unopened: Record<string, SecretsError> = Object.create(null);
  for (const row of rows) {
    try {
      configs[row.name] = joinSecrets(row, box);
    } catch (error) {
      if (!(error instanceof SecretsError)) throw error;
      unopened[row.name] = error;
    }
  }
  return { configs, unopened };
}

/** How the configuration says stdio servers run (STDIO_SANDBOX and its settings). */
export function stdioSandbox(
  config: Pick<
    Config,
    "STDIO_SANDBOX" | "STDIO_SANDBOX_NETWORK" | "STDIO_SANDBOX_PATHS" | "STDIO_SANDBOX_TMP_MB"
  >,
): StdioSandbox {
  if (config.STDIO_SANDBOX === "none") return { kind: "none" };
  return {
    kind: "bwrap",
    network: config.STDIO_SANDBOX_NETWORK,
    paths: config.STDIO_SANDBOX_PATHS,
    tmpMb: config.STDIO_SANDBOX_TMP_MB,
  };
}

/** Said at start by a process that will run stdio servers unconfined. */
export const UNCONFINED_WARNING =
  "STDIO_SANDBOX=none: stdio MCP servers run unconfined, with this process's user, files and view of its processes; any project allowed stdio servers can read the platform's secrets. Set STDIO_SANDBOX=bwrap (the default) unless every such project is trusted";

/** Said at start by a process whose confined stdio servers share the host's network. */
export const HOST_NETWORK_WARNING =
  "STDIO_SANDBOX_NETWORK=host: confined stdio MCP servers share this host's network, loopback included: any project allowed stdio servers can reach what listens on 127.0.0.1 (Postgres, Redis, Turtle's API), and read a database that trusts local connections. Set STDIO_SANDBOX_NETWORK=isolated (the default) unless every such project is trusted";

/** What a process that runs stdio servers warns of at start, given its settings. */
export function sandboxWarnings(
  config: Pick<Config, "STDIO_SANDBOX" | "STDIO_SANDBOX_NETWORK">,
): string[] {
  if (config.STDIO_SANDBOX === "none") return [UNCONFINED_WARNING];
  return config.STDIO_SANDBOX_NETWORK === "host" ? [HOST_NETWORK_WARNING] : [];
}

/**
 * Why a project's stdio servers may not start, or undefined when they may: the operator allows
 * stdio servers per project (PATCH /v1/projects/:id `allowStdioServers`).
 */
export function stdioRefusal(project: { allowStdioServers: boolean } | null): string | undefined {
  return project?.allowStdioServers
    ? undefined
    : "this project may not run stdio MCP servers (a command on Turtle's hosts): register it as an HTTP server (url) instead, or ask the operator to allow stdio servers for the project (PATCH /v1/projects/:id with allowStdioServers: true)";
}
