export { ActiveJobs, activeJobsKey } from "./active-jobs.ts";
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
  type CancelOutcome,
  ConcurrencyLimitError,
  JobStates,
  type JobStatesContext,
  type RunEnd,
  type RunRef,
  type RunWrites,
  SlotsUnavailableError,
  type StoredJobError,
  submitJob,
  submitJobs,
  type TransitionPoint,
} from "./job-states.ts";
export { EnqueueError, type NewJob, recordJob } from "./jobs.ts";
export {
  annotationPolicy,
  EVERY_TOOL,
  POLICY_KINDS,
  type PolicyKind,
  PolicyTable,
} from "./policies.ts";
export { aptInstall, Backoff, freePort } from "./processes.ts";
export {
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
  SecretsKeyMissingError,
  type ServerKey,
  type ServerSecrets,
  secretsKeyId,
  turtleSecrets,
} from "./secrets.ts";
export {
  HOST_NETWORK_WARNING,
  joinSecrets,
  loadServerConfigs,
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
export { isUuid, UUID_PATTERN } from "./uuid.ts";
export {
  metricsIndexKey,
  metricsKey,
  readLiveWorkers,
  readWorkers,
  type WorkerInfo,
  workerInfoKey,
} from "./workers.ts";
