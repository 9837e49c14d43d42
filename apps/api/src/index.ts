export {
  API_KEY_MIN_LENGTH,
  createApiKey,
  generateApiKey,
  hashApiKey,
  storeApiKey,
} from "./api-keys.ts";
export { type BuildAppOptions, buildApp, loggerOptions, REDACTED_LOG_PATHS } from "./app.ts";
export { ApiError } from "./errors.ts";
export { createFacade, facadeTools } from "./mcp/facade.ts";
export { type Auth, localAuth } from "./plugins/auth.ts";
