// Every id Turtle makes (projects, keys, jobs) is a UUID, and Postgres stores them as `uuid`: a
// text that is not one can name nothing, and is answered (404, a skipped queue entry) before it
// reaches a query that would fail on it.

/** A UUID in its usual text form, any version, either case; no anchors, to build into a path. */
export const UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

const UUID = new RegExp(`^${UUID_PATTERN}$`, "i");

/** Whether the text is a UUID (so it may name a row). */
export function isUuid(text: string): boolean {
  return UUID.test(text);
}
