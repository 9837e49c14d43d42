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
 * The longest text a secret redaction could need to see whole: the longest secret, or an API key.
 */
export function longestSecret(secrets: readonly string[] = []): number {
  let longest = API_KEY_LENGTH;
  for (const secret of processSecrets) longest = Math.max(longest, secret.length);
  for (const secret of secrets) longest = Math.max(longest, secret.length);
  return longest;
}

/** `tt_` and 43 characters: the API keys Turtle makes. */
const API_KEY_LENGTH = 46;

/**
 * The redacted end of `text`, from index `from` on, for text whose start was cut off (a stderr
 * tail): a secret the cut went through shows only its end there, which nothing would recognise.
 * So the kept text starts at `from` or later, never inside a secret or API key found whole in
 * `text`; with `from` at least `longestSecret()` into it, no piece of a cut secret is left.
 */
export function redactCutText(text: string, from: number, secrets: readonly string[] = []): string {
  const spans: Array<[number, number]> = [];
  const values =
    secrets.length === 0 ? processSecrets : sortSecrets([...processSecrets, ...secrets]);
  for (const secret of values) {
    for (let at = text.indexOf(secret); at !== -1; at = text.indexOf(secret, at + 1)) {
      spans.push([at, at + secret.length]);
    }
  }
  for (const match of text.matchAll(API_KEY_PATTERN)) {
    spans.push([match.index, match.index + match[0].length]);
  }
  let cut = Math.min(from, text.length);
  for (let moved = true; moved; ) {
    moved = false;
    for (const [start, end] of spans) {
      if (start < cut && cut < end) {
        cut = end;
        moved = true;
      }
    }
  }
  return redactSecrets(text.slice(cut), secrets);
}

/**
 * A server's value (a tool result, a tool list) with every string in it redacted. Returns the
 * value itself, not a copy, when nothing in it needed redacting: the common case on the hot path.
 */
export function redactValue<T>(value: T, secrets: readonly string[] = []): T {
  return redactDeep(value, secrets, 0) as T;
}

/** Deeper than this, a server's value is not walked: it is replaced whole, unread. */
const MAX_DEPTH = 64;

function redactDeep(value: unknown, secrets: readonly string[], depth: number): unknown {
  if (typeof value === "string") return redactSecrets(value, secrets);
  if (typeof value !== "object" || value === null) return value;
  // Returned as it is, it would carry whatever it holds past redaction.
  if (depth > MAX_DEPTH) return REDACTED;
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
