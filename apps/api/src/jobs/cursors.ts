// Opaque page cursors: the sort key of the last row served, base64url-encoded JSON.
import { isUuid } from "@turtle/core";
import { badRequest } from "../errors.ts";

/** The `limit` and `cursor` query parameters of a paged list of `noun`. */
export function pageQueryProperties(noun: string, max: number, byDefault: number) {
  return {
    limit: {
      type: "integer",
      minimum: 1,
      maximum: max,
      default: byDefault,
      description: `${noun} per page: an integer from 1 to ${max} (default ${byDefault})`,
    },
    cursor: {
      type: "string",
      minLength: 1,
      description: "nextCursor from the previous page",
    },
  } as const;
}

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

function decode(cursor: string): unknown {
  try {
    return JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
}

const invalid = () =>
  badRequest(
    "invalid_cursor",
    "query.cursor is not a cursor this API returned: pass nextCursor from the previous page, or omit it for the first page",
  );

/** Jobs are listed newest first: the cursor is (createdAt, id) of the last job served. */
export function jobCursor(job: { createdAt: Date; id: string }): string {
  return encode([job.createdAt.toISOString(), job.id]);
}

export function parseJobCursor(cursor: string): { createdAt: Date; id: string } {
  const value = decode(cursor);
  if (!Array.isArray(value) || value.length !== 2) throw invalid();
  const [at, id] = value as unknown[];
  const createdAt = new Date(typeof at === "string" ? at : Number.NaN);
  if (Number.isNaN(createdAt.getTime()) || typeof id !== "string" || !isUuid(id)) throw invalid();
  return { createdAt, id };
}

/** Steps are listed in execution order: the cursor is (seq, key) of the last step served. */
export function stepCursor(step: { seq: number; key: string }): string {
  return encode([step.seq, step.key]);
}

export function parseStepCursor(cursor: string): { seq: number; key: string } {
  const value = decode(cursor);
  if (!Array.isArray(value) || value.length !== 2) throw invalid();
  const [seq, key] = value as unknown[];
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || typeof key !== "string") {
    throw invalid();
  }
  return { seq, key };
}
