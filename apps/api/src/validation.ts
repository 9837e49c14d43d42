// Route schemas are JSON Schema checked by Ajv. Bodies are JSON, so they are checked as sent:
// `"code": 123` is an error, never coerced to "123". Query strings and path parameters are text,
// so their numbers and booleans are coerced. Every failure becomes one sentence naming the field,
// what was wrong and — from the field's `description` — what it should be.
import { Ajv, type ErrorObject } from "ajv";
import type { FastifySchemaCompiler } from "fastify";
import { badRequest } from "./errors.ts";

const common = { useDefaults: true, removeAdditional: false, allErrors: false, verbose: true };
const bodyAjv = new Ajv({ ...common, coerceTypes: false });
const textAjv = new Ajv({ ...common, coerceTypes: "array" });

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  (httpPart === "body" ? bodyAjv : textAjv).compile(schema);

interface Described {
  description?: string;
  properties?: Record<string, Described>;
}

/** Fastify's `schemaErrorFormatter`: the first Ajv error as a message that says what to fix. */
export function formatValidationError(errors: ErrorObject[], part: string): Error {
  return new Error(describeValidationError(errors[0], part));
}

export function describeValidationError(error: ErrorObject | undefined, part: string): string {
  const where = part === "querystring" ? "query" : part;
  if (!error) return `${where} is invalid`;
  const path = error.instancePath
    .split("/")
    .slice(1)
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
  const parent = (error.parentSchema ?? {}) as Described;
  const field = (segments: string[]) =>
    [where, ...segments].reduce((name, s) => (/^\d+$/.test(s) ? `${name}[${s}]` : `${name}.${s}`));

  switch (error.keyword) {
    case "required": {
      const missing = String(error.params.missingProperty);
      return `${field([...path, missing])} is required${hint(parent.properties?.[missing])}`;
    }
    case "additionalProperties": {
      const extra = String(error.params.additionalProperty);
      const allowed = Object.keys(parent.properties ?? {});
      return `${field([...path, extra])} is not a known field; the fields are ${allowed.join(", ")}`;
    }
    case "enum": {
      const allowed = (error.params.allowedValues as unknown[]).map(String).join(", ");
      return `${field(path)} must be one of ${allowed} (got ${preview(error.data)})`;
    }
    case "type": {
      const wanted = String(error.params.type).replace(",", " or ");
      const article = /^[aeiou]/.test(wanted) ? "an" : "a";
      const got = typeName(error.data);
      return `${field(path)} must be ${article} ${wanted}, not ${got}${hint(parent)}`;
    }
    default:
      return `${field(path)} ${error.message ?? "is invalid"} (got ${preview(error.data)})${hint(parent)}`;
  }
}

function hint(schema: Described | undefined): string {
  return schema?.description ? `: ${schema.description}` : "";
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

function preview(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(JSON.stringify(value));
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A date and time with its zone (Z or an offset), years 1000 to 9999. */
const ISO_TIME = /^[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** A time in a query (ISO 8601 with its zone), or 400 naming the field. */
export function parseTime(text: string, field: string): Date {
  const time = ISO_TIME.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(time)) {
    throw badRequest(
      "invalid_request",
      `query.${field} must be a date and time such as 2026-11-24T08:00:00Z (got ${JSON.stringify(text)})`,
    );
  }
  return new Date(time);
}
