/**
 * `npm run bench`: every figure beside a baseline measured in the same run on this machine,
 * and the issue's target for the ratio. Results also go to bench/results/latest.json.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { benchApi } from "./api.ts";
import { benchDeclarations } from "./declarations.ts";
import { type Figure, formatTable, passes } from "./measure.ts";
import { benchPlatform } from "./platform.ts";
import { benchSandbox } from "./sandbox.ts";

/** A suite takes the parts asked for (`platform:calls`), or runs them all. */
const suites: Array<[string, (parts: string[]) => Promise<Figure[]>]> = [
  ["sandbox", benchSandbox],
  ["declarations", benchDeclarations],
  ["platform", benchPlatform],
  ["api", benchApi],
  ["typecheck", async () => (await import("./typecheck.ts")).benchTypecheck()],
  ["load", async () => (await import("./load.ts")).benchLoad()],
];

const asked = process.argv.slice(2).map((arg) => arg.split(":") as [string, string?]);
const unknown = asked.filter(([name]) => !suites.some(([known]) => known === name));
if (unknown.length > 0) {
  const names = suites.map(([name]) => name).join(", ");
  process.stderr.write(`bench: unknown suite ${unknown[0]?.[0]}; the suites are ${names}\n`);
  process.exit(2);
}
const figures: Figure[] = [];
for (const [name, suite] of suites) {
  const mine = asked.filter(([suiteName]) => suiteName === name);
  if (asked.length > 0 && mine.length === 0) continue;
  const parts = mine.flatMap(([, part]) => (part === undefined ? [] : [part]));
  process.stderr.write(`bench: ${name}${parts.length > 0 ? ` (${parts.join(", ")})` : ""}…\n`);
  figures.push(...(await suite(parts)));
}

process.stdout.write(`${formatTable(figures)}\n`);
const results = new URL("./results/", import.meta.url);
await mkdir(results, { recursive: true });
await writeFile(
  new URL("latest.json", results),
  `${JSON.stringify({ at: new Date().toISOString(), node: process.version, figures }, null, 2)}\n`,
);
// A missed target fails the run, so a change can be gated on it.
const missed = figures.filter((figure) => !passes(figure));
if (missed.length > 0) {
  const names = missed.map((figure) => `  ${figure.name}`).join("\n");
  process.stderr.write(`bench: ${missed.length} figure(s) missed their target:\n${names}\n`);
  process.exitCode = 1;
}

// Done: the process should now end on its own. A connection left open would keep it up forever
// (a gate waiting on it would hang), so after a grace it ends anyway, failed, and says why.
setTimeout(() => {
  process.stderr.write("bench: still up 10 s after its last figure: a handle was left open\n");
  process.exit(1);
}, 10_000).unref();
