/**
 * `npm run bench`: every figure beside a baseline measured in the same run on this machine,
 * and the target for the ratio. Results also go to bench/results/latest.json.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { benchApi } from "./api.ts";
import { benchDeclarations } from "./declarations.ts";
import { type Figure, formatTable, passes } from "./measure.ts";
import { benchPlatform } from "./platform.ts";
import { benchSandbox } from "./sandbox.ts";

const suites: Array<[string, () => Promise<Figure[]>]> = [
  ["sandbox", benchSandbox],
  ["declarations", benchDeclarations],
  ["platform", benchPlatform],
  ["api", benchApi],
];

const only = process.argv.slice(2);
const figures: Figure[] = [];
for (const [name, suite] of suites) {
  if (only.length > 0 && !only.includes(name)) continue;
  process.stderr.write(`bench: ${name}…\n`);
  figures.push(...(await suite()));
}

process.stdout.write(`${formatTable(figures)}\n`);
const results = new URL("./results/", import.meta.url);
await mkdir(results, { recursive: true });
await writeFile(
  new URL("latest.json", results),
  `${JSON.stringify({ at: new Date().toISOString(), node: process.version, figures }, null, 2)}\n`,
);
const missed = figures.filter((figure) => !passes(figure));
if (missed.length > 0)
  process.stderr.write(`bench: ${missed.length} figure(s) missed their target\n`);
