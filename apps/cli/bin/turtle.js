#!/usr/bin/env -S node --no-node-snapshot
// The project brings its own Node 24 (isolated-vm needs it, and needs the startup snapshot off).
// Started by anything else — an older `node` first on PATH, or without the flag — re-run on it.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24 || !process.execArgv.includes("--no-node-snapshot")) {
  let node = process.execPath;
  if (major < 24) {
    try {
      node = createRequire(import.meta.url).resolve("node/bin/node");
    } catch {
      process.stderr.write(
        `turtle: needs Node 24 or later (this is ${process.version}); run "npm install" in the project first\n`,
      );
      process.exit(2);
    }
  }
  const child = spawnSync(
    node,
    ["--no-node-snapshot", new URL(import.meta.url).pathname, ...process.argv.slice(2)],
    { stdio: "inherit" },
  );
  process.exit(child.status ?? 1);
}

const { main } = await import("../src/main.ts");
process.exitCode = await main(process.argv.slice(2));
