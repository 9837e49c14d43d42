import { originalPositionFor, TraceMap } from "@jridgewell/trace-mapping";
import { stop, type TransformOptions, type TransformResult, transform } from "esbuild";

/**
 * The submitted TypeScript is the body of an async function (top-level `await` and `return`).
 * esbuild cannot parse a bare top-level `return`, so the body is wrapped before the transform;
 * the wrapper takes exactly one line, which `toSource` takes off again.
 */
const WRAPPER_HEAD = "(async function () {\n";
const WRAPPER_TAIL = "\n});";

export interface CompiledProgram {
  /** A JavaScript expression that evaluates to the program's async function. */
  readonly js: string;
  /** Number of lines in `js`; a stack frame outside 1..jsLines is not the program's. */
  readonly jsLines: number;
  /** Maps a position in `js` (1-based line, 1-based column) to the submitted TypeScript. */
  toSource(line: number, column: number): { line: number; column: number } | null;
}

export interface CompileFailure {
  readonly message: string;
  readonly line: number | null;
  readonly column: number | null;
}

export type CompileOutcome =
  | { ok: true; program: CompiledProgram }
  | { ok: false; error: CompileFailure };

/**
 * Recently compiled programs. A resumed or retried job recompiles the same code, and esbuild's
 * transform (an IPC round trip to its service process) costs about as much as a whole isolate.
 */
const CACHE_ENTRIES = 256;
const cache = new Map<string, Promise<CompileOutcome>>();

/**
 * Longest esbuild may work on one program. A legitimate one, even at the size limit, takes well
 * under a second; esbuild's time grows steeply with nesting (4,000 nested arrow functions, 16 kB,
 * take minutes), and its transform cannot be cancelled — only its process stopped.
 */
export const COMPILE_TIMEOUT_MS = 5_000;

export function compileProgram(
  code: string,
  filename: string,
  options: { timeoutMs?: number } = {},
): Promise<CompileOutcome> {
  const key = `${filename}\0${code}`;
  const hit = cache.get(key);
  if (hit !== undefined) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const pending = compileUncached(code, filename, options.timeoutMs ?? COMPILE_TIMEOUT_MS);
  cache.set(key, pending);
  if (cache.size > CACHE_ENTRIES) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  return pending;
}

async function compileUncached(
  code: string,
  filename: string,
  timeoutMs: number,
): Promise<CompileOutcome> {
  let output: { code: string; map: string };
  try {
    output = await boundedTransform(
      WRAPPER_HEAD + code + WRAPPER_TAIL,
      {
        loader: "ts",
        sourcefile: filename,
        sourcemap: "external",
        target: "es2024",
        charset: "utf8",
        logLevel: "silent",
      },
      timeoutMs,
    );
  } catch (error) {
    if (error instanceof CompileTimeout) {
      const message = `the program took longer than ${timeoutMs} ms to compile, and was given up: it nests too deeply (functions or arrow functions inside one another, blocks inside blocks); flatten it`;
      return { ok: false, error: { message, line: null, column: null } };
    }
    return { ok: false, error: describeEsbuildFailure(error, code.split("\n").length) };
  }
  const js = output.code.trimEnd();
  const map = new TraceMap(output.map);
  const program: CompiledProgram = {
    js,
    jsLines: js.split("\n").length,
    toSource(line, column) {
      const found = originalPositionFor(map, { line, column: column - 1 });
      if (found.line === null || found.line < 2) return null;
      return { line: found.line - 1, column: found.column + 1 };
    },
  };
  return { ok: true, program };
}

class CompileTimeout extends Error {}
class ServiceStopped extends Error {
  override message =
    `the compiler was restarted ${RESTARTS_SURVIVED + 1} times while it compiled this program (other programs took too long to compile): run it again`;
}

/**
 * How many stops of esbuild's process, each for another program that took too long, one compile
 * outlives by compiling again: a tenant's slow programs must not fail another's fast one.
 */
const RESTARTS_SURVIVED = 5;

/**
 * esbuild's service process, as the compiles running in it see it: `stopped` rejects when a
 * compile that ran too long stopped the process (the only way to stop its work), so the others
 * then in it give up their wait and compile again in the next one, once `ready`.
 */
interface Service {
  ready: Promise<void>;
  stopped: Promise<never>;
  stop(): void;
}

function newService(ready: Promise<void>): Service {
  let stop = () => {};
  const stopped = new Promise<never>((_, reject) => {
    stop = () => reject(new ServiceStopped());
  });
  stopped.catch(() => {});
  return { ready, stopped, stop };
}

let service = newService(Promise.resolve());

/** esbuild's transform, given up after `timeoutMs`, when esbuild's process is stopped. */
async function boundedTransform(
  source: string,
  options: TransformOptions,
  timeoutMs: number,
): Promise<TransformResult> {
  for (let attempt = 0; ; attempt++) {
    const current = service;
    await current.ready;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CompileTimeout()), timeoutMs);
    });
    try {
      return await Promise.race([transform(source, options), current.stopped, timedOut]);
    } catch (error) {
      if (error instanceof CompileTimeout) {
        // Its work goes on in esbuild's process until that stops; a new one starts on the
        // next transform.
        if (service === current) {
          service = newService(stop().catch(() => {}));
          current.stop();
        }
        throw error;
      }
      // Stopped for another program: compiled again.
      if (error instanceof ServiceStopped && attempt < RESTARTS_SURVIVED) continue;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

interface EsbuildMessage {
  text: string;
  location: { line: number; column: number } | null;
}

function describeEsbuildFailure(error: unknown, sourceLines: number): CompileFailure {
  const messages = (error as { errors?: EsbuildMessage[] }).errors;
  const first = messages?.[0];
  if (first === undefined) {
    return {
      message: error instanceof Error ? error.message : String(error),
      line: null,
      column: null,
    };
  }
  const location = first.location;
  // Line 1 of esbuild's input is the wrapper; an error there (or past the end) is the program's
  // last line, e.g. an unclosed brace.
  const line = location === null ? null : Math.min(sourceLines, Math.max(1, location.line - 1));
  const column = location === null ? null : location.column + 1;
  return { message: first.text, line, column };
}
