import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import ts from "typescript";
import { SANDBOX_GLOBALS } from "./sandbox-globals.ts";

/**
 * One type error. (A type alias, not an interface: the API answers with it, and a response
 * schema's type allows extra keys, which only an alias can be assigned to.)
 */
export type TypeDiagnostic = {
  /** 1-based, in the submitted program text. */
  line: number;
  /** 1-based, in UTF-16 code units, as editors and V8 count. */
  column: number;
  endLine: number;
  endColumn: number;
  /**
   * TypeScript's error code (2322, 2339, …; syntax errors are below 2000); 0 when the error is
   * not TypeScript's: the checker itself failed, or esbuild could not parse what TypeScript did.
   */
  code: number;
  /** The whole message chain, one message a line, nested ones indented. */
  message: string;
};

export interface CheckResult {
  ok: boolean;
  /** Errors only, sorted by position, at most `MAX_DIAGNOSTICS`. */
  diagnostics: TypeDiagnostic[];
  /** Whether there were more errors than `diagnostics` holds. */
  truncated: boolean;
}

export interface TypeChecker {
  /** Never throws: a program the checker cannot handle comes back as a diagnostic. */
  check(code: string, declarations: string): CheckResult;
}

export interface TypeCheckerOptions {
  /** Parsed declaration texts kept for reuse, least recently used dropped first. Default 16. */
  maxDeclarationSets?: number;
}

/** Past this many errors the rest are noise to an LLM (and cost its context). */
export const MAX_DIAGNOSTICS = 50;

/**
 * The program is the body of an async function, so it is checked as one: the same wrapper the
 * sandbox compiles with. The head is one whole line, so program line n is line n + 1 of the
 * checked file with no column shift. A function expression declares no global name that could
 * collide with a namespace; `Promise<any>` accepts any returned value, or none (the sandbox,
 * not the type system, decides whether it is JSON; `Promise<unknown>` would demand a `return`).
 */
const WRAPPER_HEAD = "(async function (): Promise<any> {\n";
const WRAPPER_TAIL = "\n});\n";

const PROGRAM_FILE = "/program.ts";
const DECLARATIONS_FILE = "/declarations.d.ts";
const GLOBALS_FILE = "/sandbox-globals.d.ts";

/**
 * `strict`, minus what makes an LLM's ordinary untyped code fail without being wrong:
 * - implicit `any` is allowed: `function total(items) {…}`, `row[key]`, callbacks of untyped tool
 *   results. Demanding annotations there buys nothing: the values come from `any` results. It is
 *   done by turning `noImplicitAny` ON and dropping its complaints (IMPLICIT_ANY_CODES), not by
 *   turning it off: only with it on does `const rows = []; rows.push(x)` evolve into an array of
 *   what was pushed — off, `[]` is `never[]` and the push is an error.
 * - `useUnknownInCatchVariables: false`: `catch (e) { console.log(e.message) }` is how nearly all
 *   such code is written, and everything thrown in the sandbox is an Error.
 * `strictNullChecks` stays: optional tool properties and `find()` results that may be
 * `undefined` are the bugs worth a round trip. Unused or unreachable code is not an error.
 *
 * `noLib` and `noResolve`: the standard library is passed as root files (below), so a program's
 * `/// <reference lib="dom" />` or `/// <reference path=…>` can neither add globals the sandbox
 * lacks nor make the checker read files.
 */
const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2024,
  strict: true,
  noImplicitAny: true,
  useUnknownInCatchVariables: false,
  noLib: true,
  noResolve: true,
  types: [],
  moduleDetection: ts.ModuleDetectionKind.Legacy,
  noEmit: true,
  skipLibCheck: true,
};

/** TS7xxx: `noImplicitAny`'s errors ("implicitly has an 'any' type") and unused-code notes. */
const isImplicitAnyCode = (code: number) => code >= 7000 && code < 8000;

const PARSE_OPTIONS: ts.CreateSourceFileOptions = {
  languageVersion: ts.ScriptTarget.ES2024,
  // JSDoc only matters to type errors in JavaScript files; skipping it in the declarations (all
  // tool descriptions) and the standard library makes parsing them cheaper.
  jsDocParsingMode: ts.JSDocParsingMode.ParseForTypeErrors,
};

/**
 * The file of the standard library that names the others, through `/// <reference lib>`. The
 * sandbox's V8 (Node 24's) has ES2025's library — Set methods, iterator helpers — and esbuild
 * leaves library calls alone, so programs may use it.
 */
const STANDARD_LIBRARY_ROOT = "lib.es2025.d.ts";

interface SharedFiles {
  /** The standard library's files, in the order of their references, then the globals. */
  names: string[];
  files: Map<string, ts.SourceFile>;
}

let shared: SharedFiles | undefined;

/**
 * The standard library and the sandbox globals, parsed once per process. SourceFiles are
 * immutable once bound, and a checker keeps its types apart from them (by node and symbol
 * ids), which is what lets every program share them.
 */
function sharedFiles(): SharedFiles {
  if (shared !== undefined) return shared;
  const directory = dirname(ts.getDefaultLibFilePath(COMPILER_OPTIONS));
  const files = new Map<string, ts.SourceFile>();
  const visit = (name: string) => {
    const path = join(directory, name);
    if (files.has(path)) return;
    const file = ts.createSourceFile(path, readFileSync(path, "utf8"), PARSE_OPTIONS);
    files.set(path, file);
    for (const reference of file.libReferenceDirectives) {
      visit(`lib.${reference.fileName.toLowerCase()}.d.ts`);
    }
  };
  visit(STANDARD_LIBRARY_ROOT);
  files.set(GLOBALS_FILE, ts.createSourceFile(GLOBALS_FILE, SANDBOX_GLOBALS, PARSE_OPTIONS));
  shared = { names: [...files.keys()], files };
  return shared;
}

export function createTypeChecker(options: TypeCheckerOptions = {}): TypeChecker {
  const maxDeclarationSets = Math.max(1, Math.floor(options.maxDeclarationSets ?? 16));
  /** Parsed declarations by their text, least recently used first. */
  const declarationSets = new Map<string, ts.SourceFile>();

  function declarationsFile(text: string): ts.SourceFile {
    const hit = declarationSets.get(text);
    if (hit !== undefined) {
      declarationSets.delete(text);
      declarationSets.set(text, hit);
      return hit;
    }
    const file = ts.createSourceFile(DECLARATIONS_FILE, text, PARSE_OPTIONS);
    declarationSets.set(text, file);
    if (declarationSets.size > maxDeclarationSets) {
      const oldest = declarationSets.keys().next();
      if (oldest.done !== true) declarationSets.delete(oldest.value);
    }
    return file;
  }

  function check(code: string, declarations: string): CheckResult {
    const { names, files } = sharedFiles();
    const declarationSet = declarationsFile(declarations);
    const wrapped = WRAPPER_HEAD + code + WRAPPER_TAIL;
    const programFile = ts.createSourceFile(PROGRAM_FILE, wrapped, PARSE_OPTIONS);
    const lookup = (name: string): ts.SourceFile | undefined => {
      if (name === PROGRAM_FILE) return programFile;
      if (name === DECLARATIONS_FILE) return declarationSet;
      return files.get(name);
    };
    const program = ts.createProgram({
      rootNames: [...names, DECLARATIONS_FILE, PROGRAM_FILE],
      options: COMPILER_OPTIONS,
      host: createHost(lookup),
    });

    const located: TypeDiagnostic[] = [];
    // Past the program's end lies only the wrapper's tail. Of the errors there, the parser's
    // last (at the end of the text: "'}' expected") says what the program left open; the others
    // are about the tail's own `});`, and would read as nonsense at the program's last line.
    const end = WRAPPER_HEAD.length + code.length;
    let pastEnd: ts.Diagnostic | undefined;
    const add = (diagnostics: readonly ts.Diagnostic[]) => {
      for (const diagnostic of diagnostics) {
        if (diagnostic.category !== ts.DiagnosticCategory.Error) continue;
        if (isImplicitAnyCode(diagnostic.code)) continue;
        const start = diagnostic.file === programFile ? (diagnostic.start ?? 0) : -1;
        if (start >= end) {
          if (pastEnd === undefined || start >= (pastEnd.start ?? 0)) pastEnd = diagnostic;
          continue;
        }
        located.push(locate(diagnostic, programFile, code.length));
      }
      if (pastEnd !== undefined) located.push(locate(pastEnd, programFile, code.length));
      pastEnd = undefined;
    };
    // Like tsc: a program that does not parse gets its syntax errors only, since the semantic
    // errors of a broken tree are mostly echoes of them.
    add(program.getSyntacticDiagnostics(programFile));
    // The declarations are generated and should always parse; if they do not, the program's
    // errors against them may be wrong, and the caller should know why.
    add(program.getSyntacticDiagnostics(declarationSet));
    if (located.length > 0) return finish(located);
    const tooDeep = statementDeeperThan(programFile, MAX_NESTING);
    if (tooDeep !== undefined) {
      const start = tooDeep.getStart(programFile);
      const at = locate(
        { ...NESTING_DIAGNOSTIC, file: programFile, start, length: tooDeep.end - start },
        programFile,
        code.length,
      );
      return finish([at]);
    }
    add(program.getOptionsDiagnostics());
    add(program.getGlobalDiagnostics());
    add(program.getSemanticDiagnostics(programFile));
    return finish(located);
  }

  return {
    check(code, declarations) {
      let text: string | undefined;
      try {
        text = String(declarations);
        return check(String(code), text);
      } catch (error) {
        // A compiler crash, or a stack overflow on absurdly nested code. A declaration set
        // that was being bound when it happened is dropped, so the next check starts clean.
        if (text !== undefined) declarationSets.delete(text);
        return finish([failure(error)]);
      }
    },
  };
}

/**
 * How deep the program's syntax tree may go. The checker walks from a node up to its file for
 * every literal and more, so its time grows with nodes × depth: 256 KB of `1 + 1 + …` chains
 * 1,000 deep took 1.5 s, a single 40,000-term chain 45 s. Real programs stay well under 100.
 */
const MAX_NESTING = 500;
const NESTING_DIAGNOSTIC: ts.Diagnostic = {
  category: ts.DiagnosticCategory.Error,
  code: 0,
  file: undefined,
  start: undefined,
  length: undefined,
  messageText: `This statement nests more than ${MAX_NESTING} levels deep, too deep to type-check: build long expressions with an array and a loop, or join().`,
};

/**
 * The outermost node of the program's text (a statement, normally) holding a node deeper than
 * `limit`, found without recursion since the tree may be very deep.
 */
function statementDeeperThan(file: ts.SourceFile, limit: number): ts.Node | undefined {
  type Entry = { node: ts.Node; depth: number; outermost: ts.Node | undefined };
  const entries: Entry[] = [{ node: file, depth: 0, outermost: undefined }];
  for (let entry = entries.pop(); entry !== undefined; entry = entries.pop()) {
    const { node, depth } = entry;
    const outermost =
      entry.outermost ?? (node.getStart(file) >= WRAPPER_HEAD.length ? node : undefined);
    if (depth > limit) return outermost ?? node;
    ts.forEachChild(node, (child) => {
      entries.push({ node: child, depth: depth + 1, outermost });
    });
  }
  return undefined;
}

/** A host that serves the files given and nothing else: no file system, no module lookups. */
function createHost(lookup: (name: string) => ts.SourceFile | undefined): ts.CompilerHost {
  return {
    getSourceFile: lookup,
    getDefaultLibFileName: () => STANDARD_LIBRARY_ROOT,
    writeFile: () => {},
    getCurrentDirectory: () => "/",
    getCanonicalFileName: (name) => name,
    useCaseSensitiveFileNames: () => true,
    getNewLine: () => "\n",
    fileExists: (name) => lookup(name) !== undefined,
    readFile: (name) => lookup(name)?.text,
    directoryExists: () => false,
    getDirectories: () => [],
    // `import("x")` in a program gets "Cannot find module", without a file system walk.
    resolveModuleNameLiterals: (literals) => literals.map(() => ({ resolvedModule: undefined })),
    jsDocParsingMode: PARSE_OPTIONS.jsDocParsingMode,
  };
}

/**
 * A diagnostic's position in the submitted program. Positions in the wrapper's head map to the
 * program's start, in its tail (an unclosed brace, say) to the program's end; a diagnostic in
 * another file, or in none, is put at line 1, column 1 with its own location in the message.
 */
function locate(
  diagnostic: ts.Diagnostic,
  programFile: ts.SourceFile,
  codeLength: number,
): TypeDiagnostic {
  const code = diagnostic.code;
  let message = withoutSetupAdvice(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
  const { file, start } = diagnostic;
  if (file !== programFile || start === undefined) {
    if (file !== undefined && start !== undefined) {
      const at = file.getLineAndCharacterOfPosition(start);
      const where = file.fileName === DECLARATIONS_FILE ? "the declarations" : file.fileName;
      message = `In ${where}, line ${at.line + 1}, column ${at.character + 1}: ${message}`;
    }
    return { line: 1, column: 1, endLine: 1, endColumn: 1, code, message };
  }
  const head = WRAPPER_HEAD.length;
  const toProgram = (position: number) => {
    const clamped = Math.min(Math.max(position, head), head + codeLength);
    const at = programFile.getLineAndCharacterOfPosition(clamped);
    // Line 0 of the file is the wrapper's head, so file line n is program line n (1-based).
    return { line: at.line, column: at.character + 1 };
  };
  const from = toProgram(start);
  const to = toProgram(start + (diagnostic.length ?? 0));
  return {
    line: from.line,
    column: from.column,
    endLine: to.line,
    endColumn: to.column,
    code,
    message,
  };
}

/**
 * "Cannot find name 'process'. Do you need to install type definitions for node? Try `npm i …`"
 * and "Try changing the 'lib' compiler option": advice for a project's author, not for a
 * program that cannot change what the sandbox provides. It is replaced by what it does provide.
 */
const SETUP_ADVICE =
  / (Do you need to (install type definitions|change your target library)|Try changing the 'lib' compiler option)[^\n]*/;
const SANDBOX_NOTE =
  " The sandbox has the ES2025 standard library, console, input, ToolError and the declared namespaces, nothing else.";

function withoutSetupAdvice(message: string): string {
  const advice = SETUP_ADVICE.exec(message);
  if (advice === null) return message;
  return (
    message.slice(0, advice.index) + SANDBOX_NOTE + message.slice(advice.index + advice[0].length)
  );
}

function failure(error: unknown): TypeDiagnostic {
  let reason = "an unreadable error";
  try {
    reason = error instanceof Error ? error.message : String(error);
  } catch {}
  const message = /call stack/i.test(reason)
    ? "The program is nested too deeply to type-check."
    : `The type checker failed on this program: ${reason}`;
  return { line: 1, column: 1, endLine: 1, endColumn: 1, code: 0, message };
}

function finish(diagnostics: TypeDiagnostic[]): CheckResult {
  diagnostics.sort((a, b) => a.line - b.line || a.column - b.column || a.code - b.code);
  return {
    ok: diagnostics.length === 0,
    diagnostics: diagnostics.slice(0, MAX_DIAGNOSTICS),
    truncated: diagnostics.length > MAX_DIAGNOSTICS,
  };
}
