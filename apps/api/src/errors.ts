// Every error the API answers with is `{ error: { code, message } }`. Handlers throw ApiError
// for the answers they mean; the error handler (plugins/errors.ts) turns everything else into
// one of these without leaking the text of unexpected failures.

/** An answer the API means to give: its status, a stable code and a message saying what to fix. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly statusCode: number;
  readonly code: string;
  /** Extra response headers (e.g. Retry-After). */
  readonly headers: Record<string, string>;
  /** Extra fields of the error body (e.g. `diagnostics`), each declared in ErrorResponseSchema. */
  readonly details: Record<string, unknown>;

  constructor(
    statusCode: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
    details: Record<string, unknown> = {},
  ) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.headers = headers;
    this.details = details;
  }
}

export const badRequest = (code: string, message: string) => new ApiError(400, code, message);
export const notFound = (message: string) => new ApiError(404, "not_found", message);
export const conflict = (code: string, message: string) => new ApiError(409, code, message);

/** One type error in a program: 1-based line and column in the submitted code. */
export const DiagnosticSchema = {
  type: "object",
  required: ["line", "column", "message"],
  properties: {
    line: { type: "integer" },
    column: { type: "integer" },
    endLine: { type: "integer" },
    endColumn: { type: "integer" },
    code: { type: "integer", description: "TypeScript's error number (TS2345 is 2345)" },
    message: { type: "string" },
  },
} as const;

/** JSON Schema of the error body, for every route's 4xx/5xx responses. */
export const ErrorResponseSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string" },
        message: { type: "string" },
        diagnostics: {
          description: "type errors in body.code (code `type_errors`), each at its line and column",
          type: "array",
          items: DiagnosticSchema,
        },
      },
    },
  },
} as const;

/** Prisma's unique-constraint violation. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "P2002";
}
