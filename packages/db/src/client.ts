import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/client.ts";

export type Db = PrismaClient;

export interface DbOptions {
  /** Connections in the pool. */
  max?: number;
}

/** A Prisma client on the driver adapter (no native query engine). */
export function createDb(url: string, options: DbOptions = {}): Db {
  const adapter = new PrismaPg({ connectionString: url, max: options.max ?? 10 });
  return new PrismaClient({ adapter });
}

/**
 * Whether `error` is Postgres (or the way to it) failing a query — unreachable, timed out,
 * refused — rather than the caller's mistake: a query Prisma would not build is not one.
 */
export function isDatabaseError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return error.name.startsWith("PrismaClient") && error.name !== "PrismaClientValidationError";
}
