export { createDb, type Db, type DbOptions, isDatabaseError } from "./client.ts";
export type { ApiKey, AuditEntry, Job, Project, Server, Step } from "./generated/client.ts";
export { Prisma } from "./generated/client.ts";
export { ApiKeyScope, AuditOutcome, JobStatus, StepStatus } from "./generated/enums.ts";
export { ensureDatabase, MIGRATIONS_DIR, MigrationError, migrate } from "./migrate.ts";
