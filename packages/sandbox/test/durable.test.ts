import { describe, expect, it } from "vitest";
import { runProgram, type ToolCall } from "../src/index.ts";
import { keyMatchesArguments } from "../src/step-key.ts";

const namespaces = { tools: ["echo"] };

async function record(code: string, replay?: string) {
  const calls: ToolCall[] = [];
  const run = await runProgram(code, {
    namespaces,
    invoke: async (call) => {
      calls.push(call);
      return call.args;
    },
    durable: replay === undefined ? {} : { replay },
  });
  return { run, keys: calls.map((call) => call.key) };
}

describe("step keys", () => {
  it("name a call by method, canonical arguments and occurrence", async () => {
    const { run, keys } = await record(
      "await tools.echo({ a: 1, b: [2, { c: 3, d: 4 }] });\nawait tools.echo({ b: [2, { d: 4, c: 3 }], a: 1 });\nawait tools.echo({ a: 2 });",
    );
    expect(run.ok).toBe(true);
    expect(keys[0]).toMatch(/^tools\.echo:[0-9a-f]{32}#0$/);
    // Same arguments in another key order: the same step, one occurrence later.
    expect(keys[1]).toBe(keys[0]?.replace("#0", "#1"));
    expect(keys[2]?.split("#")[0]).not.toBe(keys[0]?.split("#")[0]);
  });

  it("are the same under Promise.all and in an edited program making the same calls", async () => {
    const fanOut = await record(
      "await Promise.all(Array.from({ length: 50 }, (_, i) => tools.echo({ item: i % 10 })));",
    );
    const edited = await record(
      "// rewritten as a loop\nfor (let n = 0; n < 50; n++) {\n  await tools.echo({ item: n % 10 });\n}",
    );
    expect(new Set(fanOut.keys).size).toBe(50);
    expect(edited.keys).toEqual(fanOut.keys);
  });

  it("are made from the arguments as read once: a getter answering differently changes nothing", async () => {
    const { run, keys } = await record(
      "let reads = 0;\nconst args = { get n() { reads++; return reads === 1 ? 666 : 1; } };\nawait tools.echo(args);\nawait tools.echo({ n: 666 });\nreturn reads;",
    );
    expect(run.ok && run.result).toBe(1);
    // The call received { n: 666 } and its key is that of { n: 666 }: the second call, with
    // the same arguments, is its next occurrence.
    expect(keys[1]).toBe(keys[0]?.replace("#0", "#1"));
  });

  it("name what the tool receives, checked on the host with the same hash", async () => {
    const args = [
      { a: 1, b: [2, { d: "é\u2028", c: null }], "\u00e9": true, "": -0.5 },
      { big: 1e21, list: [[], {}], s: '"quoted"\\' },
    ];
    const { run, keys } = await record(
      `for (const args of input) await tools.echo(args);`.replace("input", JSON.stringify(args)),
    );
    expect(run.ok).toBe(true);
    keys.forEach((key, i) => {
      expect(keyMatchesArguments(key ?? "", "tools.echo", args[i])).toBe(true);
      expect(keyMatchesArguments(key ?? "", "tools.echo", { ...args[i], extra: 1 })).toBe(false);
    });
  });

  it("answer calls from the replay table inside the isolate, reporting their keys", async () => {
    const code =
      "const a = await tools.echo({ n: 1 });\nconst b = await tools.echo({ n: 2 });\nreturn [a, b];";
    const first = await record(code);
    const [firstKey, secondKey] = first.keys;
    const replay = JSON.stringify({ [firstKey ?? ""]: { n: 1, replayed: true } });
    const again = await record(code, replay);
    expect(again.run).toMatchObject({ ok: true, result: [{ n: 1, replayed: true }, { n: 2 }] });
    expect(again.run.replayed).toEqual([firstKey]);
    expect(again.keys).toEqual([secondKey]);
  });

  it("report replayed keys when the program then fails", async () => {
    const first = await record("await tools.echo({ n: 1 });");
    const replay = JSON.stringify({ [first.keys[0] ?? ""]: null });
    const again = await record("await tools.echo({ n: 1 });\nthrow new Error('later');", replay);
    expect(again.run.ok).toBe(false);
    expect(again.run.replayed).toEqual(first.keys);
  });

  it("tell the host how many were replayed so far, each time new calls go out", async () => {
    const code = [
      "for (let i = 0; i < 5; i++) await tools.echo({ i });",
      "await tools.echo({ i: 'new' });",
      "for (let i = 5; i < 8; i++) await tools.echo({ i });",
      "await Promise.all([tools.echo({ i: 'a' }), tools.echo({ i: 'b' })]);",
      "return 'done';",
    ].join("\n");
    const first = await record(code);
    const replayedKeys = first.keys.filter((_, i) => i !== 5 && i < 9);
    const replay = JSON.stringify(Object.fromEntries(replayedKeys.map((key) => [key, null])));
    const counts: number[] = [];
    const calls: string[] = [];
    const run = await runProgram(code, {
      namespaces,
      invoke: async (call) => {
        calls.push(`${JSON.stringify(call.args)}@${counts.at(-1) ?? 0}`);
        return call.args;
      },
      durable: { replay },
      onReplayed: (count) => counts.push(count),
    });
    expect(run.ok).toBe(true);
    expect(run.replayed).toHaveLength(8);
    // The 5 replays before the new call reach the host with it; the 3 after, with the last two.
    expect(counts).toEqual([5, 8]);
    expect(calls).toEqual(['{"i":"new"}@5', '{"i":"a"}@8', '{"i":"b"}@8']);
  });

  it("forged replayed keys (Array.prototype.toJSON) are read no further than the replay table", async () => {
    const first = await record("await tools.echo({ n: 1 });");
    const replay = JSON.stringify({ [first.keys[0] ?? ""]: { n: 1 } });
    const forge = (keys: string) =>
      record(
        [
          "await tools.echo({ n: 1 });",
          "Array.prototype.toJSON = function () {",
          `  return this.length === 2 && Array.isArray(this[0]) ? [${keys}, this[1]] : this;`,
          "};",
          "return 'forged';",
        ].join("\n"),
        replay,
      );
    // A million keys: more than the table could ever hold, so none is read.
    const flood = await forge("Array.from({ length: 1_000_000 }, (_, i) => 'k' + i)");
    expect(flood.run).toMatchObject({ ok: true, result: "forged", replayed: [] });
    // A few short ones fit, but each is taken once.
    const twice = await forge("['a', 'a', 'b', 42]");
    expect(twice.run.replayed).toEqual(["a", "b"]);
  });
});
