import { createHash } from "node:crypto";

/**
 * JSON with object keys sorted at every level, so equal arguments give equal text whatever
 * order the program built them in.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(",")}}`;
}

/**
 * Step keys for one run of a program: `server/tool:<hash of canonical args>#<occurrence>`.
 *
 * The occurrence counts earlier calls with the same tool and arguments in this run. Calls are
 * issued in program order (even under `Promise.all`), so a replay after a crash derives the
 * same keys; and since a key depends on what was called rather than where, an edited program
 * that makes the same calls finds their checkpoints.
 */
export function createStepKeyer(): (server: string, tool: string, args: unknown) => string {
  const seen = new Map<string, number>();
  return (server, tool, args) => {
    const hash = createHash("sha256").update(canonicalJson(args)).digest("base64url").slice(0, 22);
    const base = `${server}/${tool}:${hash}`;
    const occurrence = seen.get(base) ?? 0;
    seen.set(base, occurrence + 1);
    return `${base}#${occurrence}`;
  };
}
