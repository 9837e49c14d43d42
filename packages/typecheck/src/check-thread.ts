// The entry of the checker's worker thread: warms up (parses and binds the standard library),
// says it is ready, then checks one program per message, in order.
import { parentPort } from "node:worker_threads";
import { createTypeChecker } from "./type-checker.ts";

export interface CheckRequest {
  id: number;
  code: string;
  declarations: string;
}

const checker = createTypeChecker();
checker.check("return 1;", "");
parentPort?.postMessage({ ready: true });
parentPort?.on("message", (request: CheckRequest) => {
  parentPort?.postMessage({
    id: request.id,
    result: checker.check(request.code, request.declarations),
  });
});
