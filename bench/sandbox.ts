import { runProgram } from "@turtle/sandbox";
import ivm from "isolated-vm";
import { comparePerOp, type Figure, timePerOp } from "./measure.ts";

/**
 * The sandbox against raw isolated-vm doing the least the same work needs: a fresh isolate,
 * context, eval and dispose; a host function reached by `Reference.apply` with a promise.
 */
export async function benchSandbox(): Promise<Figure[]> {
  const figures: Figure[] = [];

  const run = await comparePerOp(
    () => {
      const isolate = new ivm.Isolate({ memoryLimit: 128 });
      const context = isolate.createContextSync();
      context.evalSync("1");
      context.release();
      isolate.dispose();
    },
    () => runProgram("return 1"),
    { iterations: 100 },
  );
  figures.push({
    name: "run: fresh isolate, `return 1`, dispose",
    unit: "ms",
    value: run.candidate,
    baseline: { name: "raw new Isolate+context+eval+dispose", value: run.baseline },
    target: { kind: "max-ratio", value: 1.5 },
  });
  let distinct = 0;
  const coldRun = await timePerOp(() => runProgram(`return ${distinct++}`), { iterations: 100 });
  figures.push({
    name: "run incl. esbuild compile (new program each time)",
    unit: "ms",
    value: coldRun,
    baseline: { name: "raw new Isolate+context+eval+dispose", value: run.baseline },
    target: { kind: "info", value: 0 },
  });

  const calls = 10_000;
  const sequential = await comparePerOp(
    () => rawRoundTrips(calls, false),
    () => ourRoundTrips(calls, false),
    // A round trip is two thread wake-ups on each side, the noisiest thing measured here: the
    // best of more rounds, for both alike.
    { iterations: 1, rounds: 11, warmup: 1 },
  );
  figures.push({
    name: `tool call round trip, sequential (${calls})`,
    unit: "µs",
    value: (sequential.candidate * 1000) / calls,
    baseline: { name: "raw Reference.apply promise", value: (sequential.baseline * 1000) / calls },
    target: { kind: "max-ratio", value: 1.2 },
  });
  const concurrent = await comparePerOp(
    () => rawRoundTrips(calls, true),
    () => ourRoundTrips(calls, true),
    { iterations: 1, rounds: 7, warmup: 1 },
  );
  figures.push({
    name: `tool call round trip, ${calls} in flight`,
    unit: "µs",
    value: (concurrent.candidate * 1000) / calls,
    baseline: { name: "raw Reference.apply promise", value: (concurrent.baseline * 1000) / calls },
    target: { kind: "max-ratio", value: 1.5 },
  });
  return figures;
}

/** One isolate making `calls` host calls, sequentially or all in flight at once. */
async function rawRoundTrips(calls: number, concurrent: boolean): Promise<void> {
  const isolate = new ivm.Isolate({ memoryLimit: 128 });
  const context = isolate.createContextSync();
  const host = new ivm.Reference(async (value: unknown) => value);
  const apply = "$0.apply(undefined, [i], { result: { promise: true, copy: true } })";
  const loop = concurrent
    ? `return Promise.all(Array.from({ length: ${calls} }, (_, i) => ${apply})).then(() => 0);`
    : `return (async () => { for (let i = 0; i < ${calls}; i++) await ${apply}; return 0; })();`;
  await context.evalClosure(loop, [host], { result: { promise: true, copy: true } });
  host.release();
  isolate.dispose();
}

/** The same through runProgram: a program calling an in-process tool. */
async function ourRoundTrips(calls: number, concurrent: boolean): Promise<void> {
  const program = concurrent
    ? `await Promise.all(Array.from({ length: ${calls} }, (_, i) => bench.noop({ i }))); return 0;`
    : `for (let i = 0; i < ${calls}; i++) await bench.noop({ i }); return 0;`;
  const run = await runProgram(program, {
    namespaces: { bench: ["noop"] },
    invoke: async (call) => call.args,
  });
  if (!run.ok) throw new Error(`benchmark program failed: ${run.error.message}`);
}
