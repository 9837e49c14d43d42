// API keys are `tt_` + 32 random bytes (base64url). Only their SHA-256 is stored: a leaked
// database does not leak keys, and a key needs no slow hash because it is not guessable.
import { createHash, randomBytes } from "node:crypto";
import { DEFAULT_PROJECT_ID, SCOPES, type Scope } from "@turtle/core";
import type { ApiKey, Db } from "@turtle/db";

export const API_KEY_PREFIX = "tt_";
/** Keys chosen by an operator (TURTLE_API_KEY) must be at least this long. */
export const API_KEY_MIN_LENGTH = 32;

export function generateApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
}

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Where a key belongs and what it may do: by default, every scope in the operator's project. */
export interface KeyGrant {
  projectId?: string;
  scopes?: readonly Scope[];
}

/** Stores a key's hash (once: storing the same key again returns the existing row). */
export async function storeApiKey(
  db: Pick<Db, "apiKey">,
  key: string,
  name: string,
  grant: KeyGrant = {},
): Promise<ApiKey> {
  const hash = hashApiKey(key);
  return db.apiKey.upsert({
    where: { hash },
    create: {
      name,
      hash,
      prefix: key.slice(0, API_KEY_PREFIX.length + 6),
      projectId: grant.projectId ?? DEFAULT_PROJECT_ID,
      scopes: [...(grant.scopes ?? SCOPES)],
    },
    update: {},
  });
}

/** Creates a new key; the caller shows it once, since only its hash is kept. */
export async function createApiKey(
  db: Pick<Db, "apiKey">,
  name: string,
  grant: KeyGrant = {},
): Promise<{ key: string; row: ApiKey }> {
  const key = generateApiKey();
  return { key, row: await storeApiKey(db, key, name, grant) };
}
