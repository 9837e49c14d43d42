// Everything Turtle quotes from an MCP server (stderr, start-up errors, tool errors, tool lists,
// tool results) passes through here first. A server is a tenant's code: if it ever got hold of
// one of Turtle's own secrets, or of its own registration's, it must not be able to publish it
// through an API answer, a job's error or a log line. The error classes in errors.ts redact their
// messages on construction, so a new place that quotes a server cannot forget to.

/** What a redacted value reads as. */
export const REDACTED = "[redacted]";

/** Secrets shorter than this are not redacted: they would blank out ordinary words. */
const MIN_SECRET_LENGTH = 4;

/**
 * Anything shaped like a Turtle API key (`tt_` + 32 random bytes as base64url: 43 characters), so
 * no key of any project, including ones this process never saw, is quoted.
 */
const API_KEY_PATTERN = /\btt_[A-Za-z0-9_-]{32,}/g;

let processSecrets: readonly string[] = [];

/**
 * Sets the process's own secrets (SECRETS_KEY, DATABASE_URL, …; see `turtleSecrets` in
 * @turtle/core), redacted from every message this package builds from a server's words. Called
 * once at boot by the API and the workers.
 */
export function setProcessSecrets(secrets: Iterable<string>): void {
  processSecrets = sortSecrets([...secrets]);
}

/**
 * `text` with the process's secrets, the given ones (a server's own `env` or `headers` values),
 * and anything shaped like an API key replaced by `[redacted]`, longest secrets first.
 */
export function redactSecrets(text: string, secrets: readonly string[] = []): string {
  let redacted = text;
  const values =
    secrets.length === 0 ? processSecrets : sortSecrets([...processSecrets, ...secrets]);
  for (const secret of values) {
    if (redacted.includes(secret)) redacted = redacted.split(secret).join(REDACTED);
  }
  return redacted.includes("tt_") ? redacted.replace(API_KEY_PATTERN, REDACTED) : redacted;
}

/**
 * A server's value (a tool result, a tool list) with every string in it redacted. Returns the
 * value itself, not a copy, when nothing in it needed redacting: the common case on the hot path.
 */
export function redactValue<T>(value: T, secrets: readonly string[] = []): T {
  return redactDeep(value, secrets, 0) as T;
}

function redactDeep(value: unknown, secrets: readonly string[], depth: number): unknown {
  if (typeof value === "string") return redactSecrets(value, secrets);
  if (typeof value !== "object" || value === null || depth > 64) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = redactDeep(value[i], secrets, depth + 1);
      if (item !== value[i]) {
        copy ??= [...value];
        copy[i] = item;
      }
    }
    return copy ?? value;
  }
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const cleanKey = redactSecrets(key, secrets);
    const cleanItem = redactDeep(item, secrets, depth + 1);
    if (cleanKey !== key || cleanItem !== item) {
      copy ??= { ...(value as Record<string, unknown>) };
      if (cleanKey === key) {
        copy[key] = cleanItem;
        continue;
      }
      delete copy[key];
      // Defined, not assigned: a key such as "__proto__" stays a plain property.
      Object.defineProperty(copy, cleanKey, {
        value: cleanItem,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return copy ?? value;
}

function sortSecrets(secrets: string[]): string[] {
  return [...new Set(secrets.filter((secret) => secret.length >= MIN_SECRET_LENGTH))].sort(
    (a, b) => b.length - a.length,
  );
}
