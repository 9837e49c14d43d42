// Which servers a program uses, read from its compiled JavaScript. A job connects only to those:
// a server that is down, or slow to start, then costs nothing to the programs that never name it.
// A program names a server by its namespace, a global: a free identifier (one no declaration of
// the program binds), or a property of `globalThis` written out (`globalThis.github`,
// `globalThis["github"]`). A program that uses `globalThis` any other way (`globalThis[name]`,
// passing it along) may reach any server, so it gets them all.
import { parse } from "acorn";
import { analyze } from "eslint-scope";
import type * as ESTree from "estree";
import { toIdentifier } from "./identifiers.ts";

/** The globals a program names, or "any" when it may reach any of them. */
type ProgramGlobals = ReadonlySet<string> | "any";

/**
 * Recently read programs. A job's program is compiled once per process (the compile is cached
 * too), and the same program comes again when a job is resumed or retried.
 */
const CACHE_ENTRIES = 256;
const cache = new Map<string, ProgramGlobals>();

/**
 * The servers of `servers` whose namespace the program (esbuild's output, as compileProgram
 * produces it) names, in the order given.
 */
export function serversUsedBy(js: string, servers: readonly string[]): string[] {
  // A namespace the text never spells cannot be named: a program that spells none of them, nor
  // `globalThis`, is not parsed (a parse of a large program holds the worker's event loop).
  const spelt = servers.filter((name) => js.includes(toIdentifier(name)));
  if (spelt.length === 0 && !js.includes("globalThis")) return [];
  const globals = programGlobals(js);
  if (globals === "any") return [...servers];
  return spelt.filter((name) => globals.has(toIdentifier(name)));
}

function programGlobals(js: string): ProgramGlobals {
  const hit = cache.get(js);
  if (hit !== undefined) {
    cache.delete(js);
    cache.set(js, hit);
    return hit;
  }
  const globals = readGlobals(js);
  cache.set(js, globals);
  if (cache.size > CACHE_ENTRIES) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  return globals;
}

function readGlobals(js: string): ProgramGlobals {
  let ast: ESTree.Program;
  try {
    // eslint-scope reads nodes' `range`.
    ast = parse(js, {
      ecmaVersion: "latest",
      sourceType: "script",
      ranges: true,
    }) as unknown as ESTree.Program;
  } catch {
    // esbuild's output always parses; should it not, no server may be left out.
    return "any";
  }
  try {
    return globalsOf(ast);
  } catch {
    // A tree too deep for the scope analysis (it recurses): no server may be left out.
    return "any";
  }
}

function globalsOf(ast: ESTree.Program): ProgramGlobals {
  // Programs run in strict mode (no `with` to hide a global behind an object).
  const scopes = analyze(ast, { ecmaVersion: 2026, sourceType: "script", impliedStrict: true });
  const global = scopes.globalScope;
  if (global === null) return "any";
  const names = new Set<string>();
  const globalThisRefs = new Set<ESTree.Node>();
  for (const reference of global.through) {
    const identifier = reference.identifier as ESTree.Identifier;
    names.add(identifier.name);
    if (identifier.name === "globalThis") globalThisRefs.add(identifier);
  }
  if (globalThisRefs.size === 0) return names;
  // Each free `globalThis` must be the object of a member access with a property written out.
  let named = 0;
  visit(ast, (node) => {
    if (node.type !== "MemberExpression" || !globalThisRefs.has(node.object)) return;
    const property = literalProperty(node);
    // `globalThis.globalThis` is globalThis again: a use of it that is not counted.
    if (property === undefined || property === "globalThis") return;
    names.add(property);
    named++;
  });
  return named === globalThisRefs.size ? names : "any";
}

/** The property a member access names outright: `o.x`, `o["x"]`, `` o[`x`] ``. */
function literalProperty(node: ESTree.MemberExpression): string | undefined {
  const { property } = node;
  if (!node.computed) return property.type === "Identifier" ? property.name : undefined;
  if (property.type === "Literal" && typeof property.value === "string") return property.value;
  if (property.type === "TemplateLiteral" && property.expressions.length === 0) {
    return property.quasis[0]?.value.cooked ?? undefined;
  }
  return undefined;
}

/** Calls `enter` on every node of the tree. */
function visit(node: ESTree.Node, enter: (node: ESTree.Node) => void): void {
  enter(node);
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) {
      for (const child of value) if (isNode(child)) visit(child, enter);
    } else if (isNode(value)) visit(value, enter);
  }
}

function isNode(value: unknown): value is ESTree.Node {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (value as { type?: unknown }).type === "string"
  );
}
