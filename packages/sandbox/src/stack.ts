import type { CompiledProgram } from "./compile.ts";

/** Turtle's own scripts in the isolate are named under this prefix. */
export const INTERNAL_PREFIX = "file:///turtle/";
/** The name the program's script is evaluated under, which its stack frames carry. */
export const SCRIPT_URL = `${INTERNAL_PREFIX}program.js`;
/** The name the guest runtime's script is compiled under. */
export const RUNTIME_URL = `${INTERNAL_PREFIX}runtime.js`;

export interface MappedStack {
  /** The stack with program frames pointing into the TypeScript and runtime frames removed. */
  stack: string | undefined;
  /** Position of the innermost program frame. */
  line: number | null;
  column: number | null;
}

/**
 * Rewrites a V8 stack from the isolate so it speaks of the submitted TypeScript: frames in the
 * compiled program are mapped through its source map, frames of Turtle's guest runtime and of
 * isolated-vm's boundary are dropped (they say nothing the program's author can act on).
 */
export function mapStack(
  stack: string | undefined,
  program: CompiledProgram,
  scriptUrl: string,
  filename: string,
): MappedStack {
  if (stack === undefined) return { stack: undefined, line: null, column: null };
  const location = new RegExp(`${escapeRegExp(scriptUrl)}:(\\d+):(\\d+)`, "g");
  let line: number | null = null;
  let column: number | null = null;
  const kept: string[] = [];
  for (const text of stack.split("\n")) {
    if (!/^\s+at /.test(text)) {
      kept.push(text);
      continue;
    }
    let foreign = false;
    let mine = false;
    const rewritten = text.replace(location, (_match, rawLine: string, rawColumn: string) => {
      const position = mapPosition(program, Number(rawLine), Number(rawColumn));
      if (position === null) {
        foreign = true;
        return "<turtle>";
      }
      mine = true;
      if (line === null) {
        line = position.line;
        column = position.column;
      }
      return `${filename}:${position.line}:${position.column}`;
    });
    const internal = text.includes("<isolated-vm boundary>") || text.includes(INTERNAL_PREFIX);
    if (mine || !(foreign || internal)) kept.push(rewritten);
  }
  return { stack: kept.join("\n"), line, column };
}

function mapPosition(program: CompiledProgram, line: number, column: number) {
  if (line < 1 || line > program.jsLines) return null;
  return program.toSource(line, column);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
