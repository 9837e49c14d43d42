export { type Config, ConfigError, ConfigSchema, loadConfig } from "./config.ts";
export {
  isAfter,
  type JobActivity,
  type JobActivityItem,
  type JobEvent,
  JobEventHub,
  publishJobActivity,
  publishJobEvent,
  readJobActivity,
} from "./events.ts";
export {
  EnqueueError,
  enqueueRun,
  type NewJob,
  recordJob,
  submitJob,
  submitJobs,
} from "./jobs.ts";
export {
  annotationPolicy,
  EVERY_TOOL,
  POLICY_KINDS,
  type PolicyKind,
  PolicyTable,
} from "./policies.ts";
export { Backoff, freePort } from "./processes.ts";
export {
  ActiveJobs,
  activeJobsKey,
  DEFAULT_PROJECT_ID,
  DEFAULT_PROJECT_NAME,
  PROJECT_NAME,
  parseServerRef,
  SCOPES,
  type Scope,
  serverRef,
} from "./projects.ts";
export {
  channels,
  createJobQueue,
  createRedis,
  fairPriority,
  type JobQueue,
  MAX_PRIORITY,
  type QueuedJob,
  queueEntryId,
} from "./queue.ts";
export {
  type RequeueOptions,
  requeueIfQueued,
  requeueLost,
  requeueRuns,
} from "./requeue.ts";
export {
  createSecretBox,
  generateSecretsKey,
  parseSecretsKey,
  resealServers,
  type SealedSecrets,
  SecretBox,
  SecretsError,
  type ServerKey,
  secretsKeyId,
  turtleSecrets,
} from "./secrets.ts";
export {
  HOST_NETWORK_WARNING,
  joinSecrets,
  loadServerConfigs,
  type ServerSecrets,
  type ServerView,
  sandboxWarnings,
  saveServer,
  serverData,
  serverView,
  splitSecrets,
  stdioRefusal,
  stdioSandbox,
  UNCONFINED_WARNING,
} from "./servers.ts";
export {
  metricsIndexKey,
  metricsKey,
  readLiveWorkers,
  readWorkers,
  type WorkerInfo,
  workerInfoKey,
} from "./workers.ts";
