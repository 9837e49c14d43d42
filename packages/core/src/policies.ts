// Tool policies: may a program's call to a tool run at once (allow), only once a person approves
// it (approve), or never (deny)? A ToolPolicy row decides — for the tool, else the server's "*"
// row — and without one the tool's MCP annotations do: destructiveHint → approve, otherwise
// allow. (The MCP spec lets an unannotated tool count as destructive; Turtle only acts on what a
// server says, or every unannotated tool would wait for a person.)
import type { ToolAnnotations } from "@turtle/bindings";

export type PolicyKind = "allow" | "approve" | "deny";
export const POLICY_KINDS: readonly PolicyKind[] = ["allow", "approve", "deny"];
/** The `tool` of a server-wide policy row. */
export const EVERY_TOOL = "*";

export function annotationPolicy(annotations: ToolAnnotations | undefined): PolicyKind {
  return annotations?.destructiveHint === true && annotations.readOnlyHint !== true
    ? "approve"
    : "allow";
}

/** The rules in force, from ToolPolicy rows. */
export class PolicyTable {
  private readonly rows: Map<string, PolicyKind>;

  constructor(rows: Iterable<{ server: string; tool: string; policy: PolicyKind }>) {
    this.rows = new Map([...rows].map((row) => [`${row.server}\u0000${row.tool}`, row.policy]));
  }

  /** The policy for a call, and what set it. */
  resolve(
    server: string,
    tool: string,
    annotations: ToolAnnotations | undefined,
  ): { policy: PolicyKind; source: "tool" | "server" | "annotations" } {
    const own = this.rows.get(`${server}\u0000${tool}`);
    if (own !== undefined) return { policy: own, source: "tool" };
    const wide = this.rows.get(`${server}\u0000${EVERY_TOOL}`);
    if (wide !== undefined) return { policy: wide, source: "server" };
    return { policy: annotationPolicy(annotations), source: "annotations" };
  }
}
