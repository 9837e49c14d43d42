export { type Checkpoint, CheckpointWriter } from "./checkpoints.ts";
export { DurableSteps, type PriorSteps } from "./durable-steps.ts";
export { createTurtleWorker, type TurtleWorker, type TurtleWorkerDeps } from "./worker.ts";
