export { type CliIo, main, UsageError } from "./main.ts";
