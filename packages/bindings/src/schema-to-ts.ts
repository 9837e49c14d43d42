// JSON Schema → TypeScript type text, for declarations an LLM reads. Written by hand rather than
// with json-schema-to-typescript: that library is async, dereferences with I/O-capable resolvers,
// runs a formatter, and emits exported module declarations; we need a pure, synchronous,
// fast function whose failures stay local to one tool. See README.md.
//
// Output conventions (the tests in test/declarations.test.ts show each one):
// - objects are closed unless `additionalProperties` is `true` or a schema; an object with no
//   properties at all is free-form (`{ [key: string]: unknown }`) unless it is explicitly closed;
// - an index signature next to named properties is typed `unknown`, because TypeScript requires
//   every named property to fit the index signature while JSON Schema exempts them;
// - `$defs`/`definitions` become named types (which is also how cycles terminate); any other
//   local JSON pointer is inlined;
// - whatever cannot be converted throws SchemaConversionError, and the caller decides how far
//   the damage goes (renderDeclarations: one tool's input or output).

import { isSafeIdentifier } from "./identifiers.ts";

/** A schema (or part of one) has no TypeScript rendering. */
export class SchemaConversionError extends Error {
  override readonly name = "SchemaConversionError";
  readonly code = "unsupported_schema";
}

export interface SchemaContextOptions {
  /** The document `$ref`s resolve against: the tool's input or output schema. */
  root: unknown;
  /** The type name `root` is declared as, so `{ "$ref": "#" }` can refer to it. */
  rootName?: string;
  /** Indentation level (two spaces each) of the declarations being written. Default 0. */
  level?: number;
  /** Nesting beyond this many schema levels is rejected. Default 32. */
  maxDepth?: number;
  /**
   * Chooses the type name for a `$defs`/`definitions` entry. Default: `createTypeNamer`, which
   * PascalCases it and keeps it unique within this context.
   */
  typeName?: (definitionName: string) => string;
}

export interface NamedType {
  name: string;
  /** `interface Name { … }` or `type Name = …;`, indented at the context's level, with JSDoc. */
  declaration: string;
}

export interface SchemaContext {
  readonly root: unknown;
  readonly rootName: string | undefined;
  readonly level: number;
  readonly maxDepth: number;
  readonly typeName: (definitionName: string) => string;
  /** Named types created for referenced definitions, in order of first reference. */
  readonly definitions: NamedType[];
  /** Pointer → type name of definitions already named. */
  readonly named: Map<string, string>;
  /** Pointers being inlined right now (a repeat is an unnamed cycle). */
  readonly inlining: Set<string>;
}

export function createSchemaContext(options: SchemaContextOptions): SchemaContext {
  return {
    root: options.root,
    rootName: options.rootName,
    level: options.level ?? 0,
    maxDepth: options.maxDepth ?? 32,
    typeName: options.typeName ?? createTypeNamer(new Set()),
    definitions: [],
    named: new Map(),
    inlining: new Set(),
  };
}

/**
 * The TypeScript type for `schema`, as text whose continuation lines are indented for the
 * context's level. Definitions it references are added to `ctx.definitions`.
 * @throws SchemaConversionError
 */
export function jsonSchemaToTs(schema: unknown, ctx: SchemaContext): string {
  return render(schema, ctx, ctx.level, 0).text;
}

/**
 * A named declaration for `schema`: an `interface` when it is a plain object type, else a
 * `type` alias; preceded by the schema's description as JSDoc.
 * @throws SchemaConversionError
 */
export function declareType(name: string, schema: unknown, ctx: SchemaContext): string {
  const pad = indent(ctx.level);
  const doc = isObject(schema) ? jsdoc(docLines(schema), pad) : "";
  if (isPlainObjectType(schema)) {
    const { properties, index } = objectMembers(schema, ctx, ctx.level, 0);
    const members = memberLines(properties, index, ctx.level);
    const body = members.length === 0 ? "" : `\n${members.join("\n")}\n${pad}`;
    return `${doc}${pad}interface ${name} {${body}}`;
  }
  return `${doc}${pad}type ${name} = ${render(schema, ctx, ctx.level, 0).text};`;
}

/** True for an object schema without properties, index signatures or combinators. */
export function isEmptyObjectSchema(schema: unknown): boolean {
  if (!isObject(schema)) return false;
  if (Object.keys(schema).every((key) => IGNORED_KEYWORDS.has(key))) return true;
  return (
    isPlainObjectType(schema) &&
    !hasEntries(schema.properties) &&
    !hasEntries(schema.patternProperties) &&
    (schema.additionalProperties === undefined || schema.additionalProperties === false)
  );
}

/** True when every property of a plain object schema is optional (so the argument may be omitted). */
export function hasNoRequiredProperties(schema: unknown): boolean {
  if (!isPlainObjectType(schema)) return false;
  const required = Array.isArray(schema.required) ? schema.required : [];
  if (required.length > 0) return false;
  const properties = isObject(schema.properties) ? Object.values(schema.properties) : [];
  return !properties.some((property) => isObject(property) && property.required === true);
}

/**
 * A namer that PascalCases definition names and keeps them unique among `taken` (adding 2, 3, …),
 * so `#/$defs/item` and `#/definitions/Item` don't both become `Item`.
 */
export function createTypeNamer(taken: Set<string>): (definitionName: string) => string {
  return (definitionName) => {
    const pascal = pascalCase(definitionName);
    // `Promise`, `Date`, … would shadow the globals the declarations themselves use.
    const base = isSafeIdentifier(pascal) ? pascal : `${pascal}_`;
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}${n}`;
    taken.add(name);
    return name;
  };
}

export function pascalCase(name: string): string {
  const words = name.split(/[^A-Za-z0-9]+/).filter(Boolean);
  const joined = words.map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join("");
  if (joined === "") return "_";
  return /^[0-9]/.test(joined) ? `_${joined}` : joined;
}

// Precedence of rendered type text, so unions inside arrays or intersections get parentheses.
const UNION = 0;
const INTERSECTION = 1;
const PRIMARY = 2;
interface Rendered {
  text: string;
  prec: number;
}

const UNKNOWN: Rendered = { text: "unknown", prec: PRIMARY };
const NEVER: Rendered = { text: "never", prec: PRIMARY };

/** Keywords that say nothing about the shape of a value. */
const IGNORED_KEYWORDS = new Set([
  "$schema",
  "$id",
  "$comment",
  "$defs",
  "definitions",
  "title",
  "description",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "format",
]);

const PRIMITIVES: Record<string, string> = {
  string: "string",
  number: "number",
  integer: "number",
  boolean: "boolean",
  null: "null",
};

function render(schema: unknown, ctx: SchemaContext, level: number, depth: number): Rendered {
  if (depth > ctx.maxDepth) fail(`schema nests deeper than ${ctx.maxDepth} levels`);
  if (schema === true) return UNKNOWN;
  if (schema === false) return NEVER;
  if (!isObject(schema)) fail(`malformed schema: expected an object, got ${describe(schema)}`);

  let result: Rendered;
  if (schema.$ref !== undefined) {
    // Siblings of $ref are mostly annotations; the reference decides the shape.
    result = renderRef(schema.$ref, ctx, level, depth);
  } else {
    const parts: Rendered[] = [];
    const base = renderBase(schema, ctx, level, depth);
    if (base.text !== "unknown") parts.push(base);
    for (const keyword of ["anyOf", "oneOf"] as const) {
      if (schema[keyword] === undefined) continue;
      const members = list(schema[keyword], keyword).map((s) => render(s, ctx, level, depth + 1));
      const union = unionOf(members);
      if (union.text !== "unknown") parts.push(union);
    }
    if (schema.allOf !== undefined) {
      for (const member of list(schema.allOf, "allOf")) {
        const rendered = render(member, ctx, level, depth + 1);
        if (rendered.text !== "unknown") parts.push(rendered);
      }
    }
    result = intersectionOf(parts);
  }
  if (schema.nullable === true) result = unionOf([result, literal(null)]);
  return result;
}

function renderBase(
  schema: Record<string, unknown>,
  ctx: SchemaContext,
  level: number,
  depth: number,
): Rendered {
  if ("const" in schema) return literal(schema.const);
  if (schema.enum !== undefined) return unionOf(list(schema.enum, "enum").map(literal));
  const { type } = schema;
  if (type === undefined) {
    if (OBJECT_KEYWORDS.some((key) => key in schema))
      return renderObject(schema, ctx, level, depth);
    if (ARRAY_KEYWORDS.some((key) => key in schema)) return renderArray(schema, ctx, level, depth);
    return UNKNOWN;
  }
  const types = Array.isArray(type) ? type : [type];
  if (types.length === 0) fail("malformed schema: empty type list");
  return unionOf(
    types.map((t): Rendered => {
      if (typeof t !== "string") fail(`malformed schema: type ${describe(t)}`);
      const primitive = PRIMITIVES[t];
      if (primitive) return { text: primitive, prec: PRIMARY };
      if (t === "object") return renderObject(schema, ctx, level, depth);
      if (t === "array") return renderArray(schema, ctx, level, depth);
      return fail(`unknown type ${JSON.stringify(t)}`);
    }),
  );
}

// `required` alone is left out: `anyOf: [{ required: ["a"] }, …]` constrains, it doesn't shape.
const OBJECT_KEYWORDS = ["properties", "additionalProperties", "patternProperties"];
const ARRAY_KEYWORDS = ["items", "prefixItems"];

function renderObject(
  schema: Record<string, unknown>,
  ctx: SchemaContext,
  level: number,
  depth: number,
): Rendered {
  const { properties, index } = objectMembers(schema, ctx, level, depth);
  if (properties.length === 0) {
    if (index === undefined) return { text: "{}", prec: PRIMARY };
    if (!index.includes("\n")) return { text: `{ [key: string]: ${index} }`, prec: PRIMARY };
  }
  const lines = memberLines(properties, index, level);
  return { text: `{\n${lines.join("\n")}\n${indent(level)}}`, prec: PRIMARY };
}

interface ObjectMembers {
  /** One entry per property: its JSDoc and declaration, indented one level below `level`. */
  properties: string[];
  /** The index signature's value type, when the object has one. */
  index: string | undefined;
}

function objectMembers(
  schema: Record<string, unknown>,
  ctx: SchemaContext,
  level: number,
  depth: number,
): ObjectMembers {
  const pad = indent(level + 1);
  const members: string[] = [];
  const properties = schema.properties ?? {};
  if (!isObject(properties)) fail("malformed schema: properties must be an object");
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const names = Object.keys(properties);
  for (const name of names) {
    const property = properties[name];
    const type = render(property, ctx, level + 1, depth + 1);
    // Draft 3 marked required properties on the property itself.
    const isRequired = required.has(name) || (isObject(property) && property.required === true);
    const doc = isObject(property) ? jsdoc(docLines(property), pad) : "";
    members.push(`${doc}${pad}${propertyKey(name)}${isRequired ? "" : "?"}: ${type.text};`);
  }

  const extra: Rendered[] = [];
  const { additionalProperties, patternProperties } = schema;
  if (patternProperties !== undefined) {
    if (!isObject(patternProperties)) fail("malformed schema: patternProperties must be an object");
    for (const pattern of Object.values(patternProperties)) {
      extra.push(render(pattern, ctx, level + 1, depth + 1));
    }
  }
  if (additionalProperties !== undefined && additionalProperties !== false) {
    extra.push(render(additionalProperties, ctx, level + 1, depth + 1));
  }
  let index: string | undefined;
  if (extra.length > 0 || (names.length === 0 && additionalProperties !== false)) {
    index = names.length > 0 || extra.length === 0 ? "unknown" : unionOf(extra).text;
  }
  return { properties: members, index };
}

function memberLines(properties: string[], index: string | undefined, level: number): string[] {
  return index === undefined
    ? properties
    : [...properties, `${indent(level + 1)}[key: string]: ${index};`];
}

function renderArray(
  schema: Record<string, unknown>,
  ctx: SchemaContext,
  level: number,
  depth: number,
): Rendered {
  const { items, prefixItems } = schema;
  let prefix: unknown[] | undefined;
  let rest: unknown;
  if (prefixItems !== undefined) {
    prefix = list(prefixItems, "prefixItems");
    rest = items;
  } else if (Array.isArray(items)) {
    prefix = items;
    rest = schema.additionalItems;
  }
  if (prefix === undefined) {
    if (items === false) return { text: "[]", prec: PRIMARY };
    const element = items === undefined ? UNKNOWN : render(items, ctx, level, depth + 1);
    return { text: `${wrap(element, PRIMARY)}[]`, prec: PRIMARY };
  }
  const minItems = typeof schema.minItems === "number" ? schema.minItems : 0;
  const maxItems = typeof schema.maxItems === "number" ? schema.maxItems : Number.POSITIVE_INFINITY;
  const elements = prefix.map((item, i) => {
    const element = render(item, ctx, level, depth + 1);
    return i < minItems ? element.text : `${wrap(element, PRIMARY)}?`;
  });
  if (rest !== false && maxItems > prefix.length) {
    const element = rest === undefined ? UNKNOWN : render(rest, ctx, level, depth + 1);
    elements.push(`...${wrap(element, PRIMARY)}[]`);
  }
  return { text: `[${elements.join(", ")}]`, prec: PRIMARY };
}

function renderRef(ref: unknown, ctx: SchemaContext, level: number, depth: number): Rendered {
  if (typeof ref !== "string") fail(`malformed schema: $ref ${describe(ref)}`);
  if (ref === "#") {
    if (ctx.rootName === undefined) fail('unsupported $ref "#"');
    return { text: ctx.rootName, prec: PRIMARY };
  }
  if (!ref.startsWith("#/")) fail(`unsupported $ref ${JSON.stringify(ref)}`);
  const path = ref.slice(2).split("/").map(decodePointerSegment);
  const target = path.reduce<unknown>(
    (node, key) =>
      isObject(node) || Array.isArray(node) ? (node as Record<string, unknown>)[key] : undefined,
    ctx.root,
  );
  if (target === undefined) fail(`unknown $ref ${JSON.stringify(ref)}`);

  const [container, definitionName] = path;
  if (path.length === 2 && definitionName !== undefined && isDefinitions(container)) {
    const existing = ctx.named.get(ref);
    if (existing !== undefined) return { text: existing, prec: PRIMARY };
    const name = ctx.typeName(definitionName);
    ctx.named.set(ref, name);
    // Reserve the slot first, so definitions read in order of first reference.
    const slot: NamedType = { name, declaration: "" };
    ctx.definitions.push(slot);
    slot.declaration = declareType(name, target, ctx);
    return { text: name, prec: PRIMARY };
  }

  if (ctx.inlining.has(ref)) fail(`recursive $ref ${JSON.stringify(ref)} outside $defs`);
  ctx.inlining.add(ref);
  try {
    return render(target, ctx, level, depth + 1);
  } finally {
    ctx.inlining.delete(ref);
  }
}

function isDefinitions(container: string | undefined): boolean {
  return container === "$defs" || container === "definitions";
}

function decodePointerSegment(segment: string): string {
  let decoded = segment;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    // Not percent-encoded after all; use as written.
  }
  return decoded.replaceAll("~1", "/").replaceAll("~0", "~");
}

function unionOf(members: Rendered[]): Rendered {
  const unique: Rendered[] = [];
  for (const member of members) {
    if (member.text === "unknown") return UNKNOWN;
    if (member.text === "never") continue;
    if (!unique.some((u) => u.text === member.text)) unique.push(member);
  }
  const [first] = unique;
  if (first === undefined) return NEVER;
  if (unique.length === 1) return first;
  // Unions and intersections need no parentheses inside a union.
  return { text: unique.map((m) => m.text).join(" | "), prec: UNION };
}

function intersectionOf(members: Rendered[]): Rendered {
  if (members.length === 0) return UNKNOWN;
  if (members.length === 1) return members[0] ?? UNKNOWN;
  return { text: members.map((m) => wrap(m, INTERSECTION)).join(" & "), prec: INTERSECTION };
}

function wrap(rendered: Rendered, minPrec: number): string {
  return rendered.prec < minPrec ? `(${rendered.text})` : rendered.text;
}

/** A JSON value as a TypeScript literal type. */
function literal(value: unknown): Rendered {
  if (value === null || typeof value === "string" || typeof value === "boolean") {
    return { text: JSON.stringify(value), prec: PRIMARY };
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) fail(`malformed schema: literal ${value}`);
    return { text: JSON.stringify(value), prec: PRIMARY };
  }
  if (Array.isArray(value)) {
    return { text: `[${value.map((v) => literal(v).text).join(", ")}]`, prec: PRIMARY };
  }
  if (isObject(value)) {
    const members = Object.entries(value).map(([k, v]) => `${propertyKey(k)}: ${literal(v).text}`);
    return { text: members.length === 0 ? "{}" : `{ ${members.join("; ")} }`, prec: PRIMARY };
  }
  return fail(`malformed schema: literal ${describe(value)}`);
}

function docLines(schema: Record<string, unknown>): string[] {
  const lines: string[] = [];
  if (typeof schema.description === "string") {
    const text = schema.description.replace(/\s+$/, "");
    if (text !== "") lines.push(...text.split(/\r?\n/).map((line) => line.trimEnd()));
  }
  if (typeof schema.format === "string") lines.push(`@format ${schema.format}`);
  if (schema.default !== undefined) lines.push(`@default ${JSON.stringify(schema.default)}`);
  if (schema.deprecated === true) lines.push("@deprecated");
  return lines;
}

/** A JSDoc comment (with trailing newline and the next line's indentation), or "". */
export function jsdoc(lines: string[], pad: string): string {
  if (lines.length === 0) return "";
  const safe = lines.map((line) => line.replaceAll("*/", "*\\/"));
  if (safe.length === 1) return `${pad}/** ${safe[0]} */\n`;
  return `${pad}/**\n${safe.map((line) => (line ? `${pad} * ${line}` : `${pad} *`)).join("\n")}\n${pad} */\n`;
}

function propertyKey(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

function isPlainObjectType(schema: unknown): schema is Record<string, unknown> {
  if (!isObject(schema)) return false;
  for (const keyword of ["$ref", "const", "enum", "anyOf", "oneOf", "allOf"]) {
    if (schema[keyword] !== undefined) return false;
  }
  if (schema.nullable === true) return false;
  if (schema.type === "object") return true;
  return schema.type === undefined && OBJECT_KEYWORDS.some((key) => key in schema);
}

function hasEntries(value: unknown): boolean {
  return isObject(value) && Object.keys(value).length > 0;
}

function list(value: unknown, keyword: string): unknown[] {
  if (!Array.isArray(value)) fail(`malformed schema: ${keyword} must be an array`);
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function indent(level: number): string {
  return "  ".repeat(level);
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function fail(message: string): never {
  throw new SchemaConversionError(message);
}
