export type { Tool } from "@modelcontextprotocol/sdk/types.js";
export {
  type CallToolOptions,
  type ClientPool,
  type ClientPoolOptions,
  createClientPool,
  IDEMPOTENCY_META_KEY,
} from "./client-pool.ts";
export {
  type HttpServerConfig,
  HttpServerConfigSchema,
  isStdioServerConfig,
  loadMcpServersFile,
  type McpServerConfig,
  McpServerConfigSchema,
  type McpServersFile,
  McpServersFileSchema,
  parseMcpServersFile,
  ServerNameSchema,
  type StdioServerConfig,
  StdioServerConfigSchema,
} from "./config.ts";
export { renderDeclarations } from "./declarations.ts";
export {
  CatalogError,
  ConfigError,
  ServerUnavailableError,
  ToolError,
} from "./errors.ts";
export {
  buildCatalog,
  type Catalog,
  type CatalogMethod,
  type CatalogNamespace,
  isSafeIdentifier,
  type ResolvedMethod,
  resolveMethod,
  serverNameProblem,
  type ToolAnnotations,
  toIdentifier,
} from "./identifiers.ts";
export { serversUsedBy } from "./program-servers.ts";
export { REDACTED, redactSecrets, redactValue, setProcessSecrets } from "./redact.ts";
export {
  bwrapOptions,
  DEFAULT_SANDBOX_TMP_MB,
  limitedCommand,
  type SandboxPath,
  type StdioSandbox,
} from "./sandbox.ts";
export {
  createSchemaContext,
  declareType,
  jsonSchemaToTs,
  type NamedType,
  type SchemaContext,
  type SchemaContextOptions,
  SchemaConversionError,
} from "./schema-to-ts.ts";
export {
  createToolHost,
  type ToolHost,
  type ToolHostCall,
  type ToolHostOptions,
  type UnavailableServer,
} from "./tool-host.ts";
export { unwrapToolResult } from "./tool-result.ts";
