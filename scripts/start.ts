// `npm start`: the API and one worker together, for a single machine. Scale out by running more
// `npm run worker` processes (here or on other machines) against the same Postgres and Redis.
import { startProcess, stop } from "./processes.ts";

const api = startProcess("api", {}, "inherit");
const worker = startProcess("worker", {}, "inherit");
const children = [api, worker];

let stopping = false;
const shutdown = async (code: number) => {
  if (stopping) return;
  stopping = true;
  await Promise.all(children.map(stop));
  process.exit(code);
};
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void shutdown(0));
for (const child of children) {
  // One of the pair stopping on its own (a bad setting, a port in use) stops the other.
  child.once("exit", (code) => void shutdown(code ?? 1));
}
