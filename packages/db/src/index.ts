export { createDb, type Db, type DbOptions } from "./client.ts";
export type { ApiKey, Job, Server, Step } from "./generated/client.ts";
export { Prisma } from "./generated/client.ts";
export { JobStatus, StepStatus } from "./generated/enums.ts";
export { ensureDatabase, MIGRATIONS_DIR, MigrationError, migrate } from "./migrate.ts";
