-- CreateEnum
CREATE TYPE "JobStatus" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- CreateEnum
CREATE TYPE "StepStatus" AS ENUM ('succeeded', 'failed');

-- CreateTable
CREATE TABLE "ApiKey" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Server" (
    "name" TEXT NOT NULL,
    "config" JSONB NOT NULL,
    "secrets" JSONB NOT NULL DEFAULT '{}',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Server_pkey" PRIMARY KEY ("name")
);

-- CreateTable
CREATE TABLE "Job" (
    "id" UUID NOT NULL,
    "status" "JobStatus" NOT NULL DEFAULT 'queued',
    "code" TEXT NOT NULL,
    "input" JSONB,
    "servers" TEXT[],
    "timeoutMs" INTEGER NOT NULL,
    "memoryMb" INTEGER NOT NULL,
    "idempotencyKey" TEXT,
    "result" JSONB,
    "resultTruncated" BOOLEAN NOT NULL DEFAULT false,
    "error" JSONB,
    "logs" JSONB NOT NULL DEFAULT '[]',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "deliveries" INTEGER NOT NULL DEFAULT 0,
    "run" INTEGER NOT NULL DEFAULT 0,
    "executedSteps" INTEGER NOT NULL DEFAULT 0,
    "replayedSteps" INTEGER NOT NULL DEFAULT 0,
    "wallMs" INTEGER,
    "cpuMs" INTEGER,
    "cancelRequestedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Job_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Step" (
    "jobId" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "server" TEXT NOT NULL,
    "tool" TEXT NOT NULL,
    "status" "StepStatus" NOT NULL,
    "result" JSONB,
    "error" JSONB,
    "attempt" INTEGER NOT NULL,
    "replays" INTEGER NOT NULL DEFAULT 0,
    "startedAt" TIMESTAMP(3) NOT NULL,
    "finishedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Step_pkey" PRIMARY KEY ("jobId","key")
);

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- CreateIndex
CREATE UNIQUE INDEX "Job_idempotencyKey_key" ON "Job"("idempotencyKey");

-- CreateIndex
CREATE INDEX "Job_createdAt_id_idx" ON "Job"("createdAt" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "Job_status_createdAt_idx" ON "Job"("status", "createdAt" DESC);

-- CreateIndex
CREATE INDEX "Step_jobId_seq_idx" ON "Step"("jobId", "seq");

-- AddForeignKey
ALTER TABLE "Step" ADD CONSTRAINT "Step_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
