// MCP servers' secret `env` and `headers` values, encrypted at rest: AES-256-GCM under
// SECRETS_KEY, each sealed value bound to its server's project and name (a row's secrets copied
// onto another server, or into another project, do not open). A sealed value names its key by an
// id (the start of the key's SHA-256), so a rotation can be rolled out with no downtime: every
// process first learns the new key as one it may open with (SECRETS_READ_KEYS), then seals with
// it (SECRETS_KEY), then `npm run secrets:rotate` seals every row again under it, and the old key
// can go.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import type { Db, Prisma } from "@turtle/db";
import { ConfigError } from "./config.ts";
import { DEFAULT_PROJECT_ID, serverRef } from "./projects.ts";

/** Secret values of a server entry: kept apart, never shown, never put in an isolate. */
export interface ServerSecrets {
  env?: Record<string, string>;
  headers?: Record<string, string>;
}

/** How sealed secrets are stored in `Server.secrets`. */
export interface SealedSecrets {
  /** 2: bound to the server's project and name; 1 (before projects): to its name alone. */
  v: 1 | 2;
  /** The key's id: the first 16 hex digits of its SHA-256. */
  kid: string;
  iv: string;
  tag: string;
  data: string;
}

/** A server's secrets that do not open: altered, or moved to another server. */
export class SecretsError extends Error {
  override name = "SecretsError";
  readonly code: "secrets_unreadable" | "secrets_key_missing" = "secrets_unreadable";
}

/**
 * A server's secrets are sealed with a key this process does not have (neither SECRETS_KEY nor
 * in SECRETS_READ_KEYS): nothing is wrong with them, another process may open them. During a key
 * rotation, or with two deployments on one Postgres, a worker hands such a job back to the queue
 * instead of failing it.
 */
export class SecretsKeyMissingError extends SecretsError {
  override name = "SecretsKeyMissingError";
  override readonly code = "secrets_key_missing";
  /** The id of the key the secrets are sealed with. */
  readonly kid: string;
  readonly server: ServerKey;

  constructor(message: string, kid: string, server: ServerKey) {
    super(message);
    this.kid = kid;
    this.server = { projectId: server.projectId, name: server.name };
  }
}

const ALGORITHM = "aes-256-gcm";

/** Which server a sealed value belongs to. */
export interface ServerKey {
  projectId: string;
  name: string;
}

/**
 * The additional data a value is sealed with. Version 1 values were sealed before projects, when
 * every server was in what is now the default project: they open there only.
 */
function boundTo(server: ServerKey, version: 1 | 2): Buffer | null {
  if (version === 2)
    return Buffer.from(`turtle-server:${serverRef(server.projectId, server.name)}`);
  return server.projectId === DEFAULT_PROJECT_ID
    ? Buffer.from(`turtle-server:${server.name}`)
    : null;
}

/** A key from its text: 32 bytes as base64 (standard or url-safe) or as 64 hex digits. */
export function parseSecretsKey(text: string, variable: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, "hex")
    : Buffer.from(trimmed.replaceAll("-", "+").replaceAll("_", "/"), "base64");
  if (key.length !== 32) {
    throw new ConfigError(
      `${variable} must be 32 random bytes as base64 or hex (got ${key.length} bytes): make one with \`openssl rand -base64 32\`, or let \`npm run setup\` write it to .env`,
    );
  }
  return key;
}

export function generateSecretsKey(): string {
  return randomBytes(32).toString("base64");
}

export function secretsKeyId(key: Buffer): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

function isSealed(value: unknown): value is SealedSecrets {
  const sealed = value as Partial<SealedSecrets> | null;
  return (
    typeof sealed === "object" &&
    sealed !== null &&
    (sealed.v === 1 || sealed.v === 2) &&
    typeof sealed.kid === "string" &&
    typeof sealed.iv === "string" &&
    typeof sealed.tag === "string" &&
    typeof sealed.data === "string"
  );
}

export class SecretBox {
  private readonly sealKey: Buffer;
  /** The id of the key new secrets are sealed with. */
  readonly keyId: string;
  private readonly keys: Map<string, Buffer>;

  constructor(sealKey: Buffer, readKeys: Buffer[] = []) {
    this.sealKey = sealKey;
    this.keyId = secretsKeyId(sealKey);
    this.keys = new Map([...readKeys, sealKey].map((key) => [secretsKeyId(key), key]));
  }

  /** Seals a server's secrets under the current key, bound to the server's project and name. */
  seal(server: ServerKey, secrets: ServerSecrets): SealedSecrets {
    const iv = randomBytes(12);
    const cipher = createCipheriv(ALGORITHM, this.sealKey, iv);
    cipher.setAAD(boundTo(server, 2) as Buffer);
    const data = Buffer.concat([cipher.update(JSON.stringify(secrets), "utf8"), cipher.final()]);
    return {
      v: 2,
      kid: this.keyId,
      iv: iv.toString("base64"),
      tag: cipher.getAuthTag().toString("base64"),
      data: data.toString("base64"),
    };
  }

  /**
   * A server's secrets from what is stored. Rows written before secrets were encrypted hold them
   * in the clear; they are read as they are (and sealed by the next rotation).
   */
  open(server: ServerKey, stored: unknown): ServerSecrets {
    if (!isSealed(stored)) return (stored ?? {}) as ServerSecrets;
    const key = this.keys.get(stored.kid);
    if (key === undefined) {
      throw new SecretsKeyMissingError(
        `the secrets of server "${server.name}" are sealed with key ${stored.kid}, which is neither SECRETS_KEY (${this.keyId}) nor in SECRETS_READ_KEYS: give this process that key`,
        stored.kid,
        server,
      );
    }
    try {
      const aad = boundTo(server, stored.v);
      if (aad === null) throw new Error("sealed before projects, outside the default project");
      const decipher = createDecipheriv(ALGORITHM, key, Buffer.from(stored.iv, "base64"));
      decipher.setAAD(aad);
      decipher.setAuthTag(Buffer.from(stored.tag, "base64"));
      const text = Buffer.concat([
        decipher.update(Buffer.from(stored.data, "base64")),
        decipher.final(),
      ]).toString("utf8");
      return JSON.parse(text) as ServerSecrets;
    } catch {
      throw new SecretsError(
        `the secrets of server "${server.name}" do not open: they were altered, or belong to another server; register the server again`,
      );
    }
  }

  /** Whether what is stored is sealed (not secrets from before they were encrypted). */
  isSealed(stored: unknown): boolean {
    return isSealed(stored);
  }

  /**
   * Whether what is stored is sealed under the current key, bound to its project (else a
   * rotation seals it again).
   */
  isCurrent(stored: unknown): boolean {
    return isSealed(stored) && stored.v === 2 && stored.kid === this.keyId;
  }
}

/**
 * Seals again the secrets of every registered server that are not sealed under the box's
 * current key (`all`), or only those still in the clear; returns the names resealed. Each row is
 * written only if nobody changed it meanwhile.
 */
export async function resealServers(
  db: Db,
  box: SecretBox,
  options: { all: boolean },
): Promise<string[]> {
  const rows = await db.server.findMany({ orderBy: [{ projectId: "asc" }, { name: "asc" }] });
  const resealed: string[] = [];
  for (const row of rows) {
    const clear = !box.isSealed(row.secrets);
    if (!clear && (!options.all || box.isCurrent(row.secrets))) continue;
    const sealed = box.seal(row, box.open(row, row.secrets));
    const written = await db.server.updateMany({
      where: { projectId: row.projectId, name: row.name, updatedAt: row.updatedAt },
      data: { secrets: sealed as unknown as Prisma.InputJsonValue },
    });
    if (written.count === 1) resealed.push(row.name);
  }
  return resealed;
}

/** The box of a process's configuration: SECRETS_KEY seals and opens, SECRETS_READ_KEYS open. */
export function createSecretBox(config: { SECRETS_KEY?: string; SECRETS_READ_KEYS?: string }) {
  if (config.SECRETS_KEY === undefined) {
    throw new ConfigError(
      "SECRETS_KEY is not set: MCP servers' secrets are encrypted with it. Run `npm run setup` (it writes one to .env), or set 32 random bytes as base64 (`openssl rand -base64 32`)",
    );
  }
  const readKeys = (config.SECRETS_READ_KEYS ?? "")
    .split(",")
    .filter((text) => text.trim() !== "")
    .map((text, i) => parseSecretsKey(text, `SECRETS_READ_KEYS[${i}]`));
  return new SecretBox(parseSecretsKey(config.SECRETS_KEY, "SECRETS_KEY"), readKeys);
}

/**
 * Turtle's own secrets in a process, as text a server might quote: SECRETS_KEY and each of
 * SECRETS_READ_KEYS (in every encoding the key may be written in), DATABASE_URL and REDIS_URL and
 * their passwords, and the operator's TURTLE_API_KEY. The API and workers hand these to
 * `setProcessSecrets` (@turtle/bindings) at boot, so no server's words carry one out.
 */
export function turtleSecrets(
  config: {
    SECRETS_KEY?: string;
    SECRETS_READ_KEYS?: string;
    DATABASE_URL: string;
    REDIS_URL: string;
  },
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const secrets: string[] = [];
  const keys = [config.SECRETS_KEY ?? "", ...(config.SECRETS_READ_KEYS ?? "").split(",")];
  for (const text of keys.map((key) => key.trim()).filter((key) => key !== "")) {
    secrets.push(text);
    try {
      const key = parseSecretsKey(text, "key");
      secrets.push(key.toString("hex"), key.toString("base64"), key.toString("base64url"));
    } catch {
      // Not a valid key: the text itself is what a server could have read.
    }
  }
  for (const url of [config.DATABASE_URL, config.REDIS_URL]) {
    secrets.push(url);
    try {
      const parsed = new URL(url);
      if (parsed.password !== "") {
        secrets.push(parsed.password, decodeURIComponent(parsed.password));
      }
    } catch {
      // Validated as a URL by the config schema; nothing more to find in one that is not.
    }
  }
  const apiKey = env.TURTLE_API_KEY?.trim();
  if (apiKey) secrets.push(apiKey);
  return secrets;
}
