// Browser sessions for the dashboards: a user logs in with an API key once, and the browser then
// holds a random session token in an HttpOnly cookie instead of the key. Only the token's SHA-256
// is stored, in Redis (so any API instance knows it), pointing at the key it came from: revoking
// the key ends its sessions too.
import { createHash, randomBytes } from "node:crypto";
import type { Redis } from "ioredis";

export const SESSION_COOKIE = "turtle_session";
/** How long a session lasts after login. */
export const SESSION_TTL_S = 12 * 3600;

function sessionKey(queue: string, token: string): string {
  return `${queue}:session:${createHash("sha256").update(token).digest("hex")}`;
}

/** Starts a session for the API key `keyId`; returns its token, to be set as the cookie. */
export async function createSession(redis: Redis, queue: string, keyId: string): Promise<string> {
  const token = randomBytes(32).toString("base64url");
  await redis.set(sessionKey(queue, token), keyId, "EX", SESSION_TTL_S);
  return token;
}

/** The API key a session token stands for, or null when it is unknown or expired. */
export function sessionKeyId(redis: Redis, queue: string, token: string): Promise<string | null> {
  return redis.get(sessionKey(queue, token));
}

export async function deleteSession(redis: Redis, queue: string, token: string): Promise<void> {
  await redis.del(sessionKey(queue, token));
}
