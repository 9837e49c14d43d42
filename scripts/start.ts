// `npm start`: the API and one worker together, for a single machine. Scale out by running more
// `npm run worker` processes (here or on other machines) against the same Postgres and Redis.
//
// Either process that dies (killed, out of memory, Postgres or Redis away at its start) is
// started again after a back-off (1 s, doubling to 30 s, reset once it has stayed up a minute)
// while the other keeps running: the API goes on accepting jobs while its worker is away, and a
// worker goes on running jobs while the API is away, which is better than taking both down. A
// bad setting would only make that a loop, so settings are checked once here, before either
// starts. In production a container runtime does this job (see the README).
import { existsSync } from "node:fs";
import { ConfigError, loadConfig } from "@turtle/core";
import { ROOT, supervise } from "./processes.ts";

// As the processes will read it: .env at the root, the environment winning over it.
if (existsSync(`${ROOT}.env`)) process.loadEnvFile(`${ROOT}.env`);
try {
  loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`turtle: ${error.message}\n`);
  process.exit(1);
}

const say = (line: string) => process.stderr.write(`turtle: ${line}\n`);
const children = [supervise("api", say), supervise("worker", say)];

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void Promise.all(children.map((child) => child.stop())).then(() => process.exit(0));
  });
}
