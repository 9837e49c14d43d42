export { type Checkpoint, CheckpointWriter } from "./checkpoints.ts";
export { DurableSteps, type PriorStep } from "./durable-steps.ts";
export { createTurtleWorker, type TurtleWorker, type TurtleWorkerDeps } from "./worker.ts";
