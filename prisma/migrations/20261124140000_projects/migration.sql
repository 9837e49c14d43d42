-- Tenants. Everything stored before belongs to the project "default", the operator's.

-- CreateEnum
CREATE TYPE "ApiKeyScope" AS ENUM ('submit', 'read', 'admin');

-- CreateEnum
CREATE TYPE "AuditOutcome" AS ENUM ('succeeded', 'failed', 'denied', 'rejected');

-- CreateTable
CREATE TABLE "Project" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "operator" BOOLEAN NOT NULL DEFAULT false,
    "maxConcurrentJobs" INTEGER,
    "requestsPerMinute" INTEGER,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Project_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Project_name_key" ON "Project"("name");

INSERT INTO "Project" ("id", "name", "operator") VALUES ('00000000-0000-4000-8000-000000000001', 'default', true);

-- AlterTable: keys
ALTER TABLE "ApiKey" ADD COLUMN "projectId" UUID NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001',
ADD COLUMN "scopes" "ApiKeyScope"[] NOT NULL DEFAULT ARRAY['submit', 'read', 'admin']::"ApiKeyScope"[];
ALTER TABLE "ApiKey" ALTER COLUMN "projectId" DROP DEFAULT, ALTER COLUMN "scopes" DROP DEFAULT;
CREATE INDEX "ApiKey_projectId_idx" ON "ApiKey"("projectId");
ALTER TABLE "ApiKey" ADD CONSTRAINT "ApiKey_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AlterTable: servers, named within their project
ALTER TABLE "Server" ADD COLUMN "projectId" UUID NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001';
ALTER TABLE "Server" ALTER COLUMN "projectId" DROP DEFAULT;
ALTER TABLE "Server" DROP CONSTRAINT "Server_pkey", ADD CONSTRAINT "Server_pkey" PRIMARY KEY ("projectId", "name");
ALTER TABLE "Server" ADD CONSTRAINT "Server_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AlterTable: jobs; idempotency keys are unique within a project
ALTER TABLE "Job" ADD COLUMN "projectId" UUID NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001';
ALTER TABLE "Job" ALTER COLUMN "projectId" DROP DEFAULT;
DROP INDEX "Job_idempotencyKey_key";
DROP INDEX "Job_createdAt_id_idx";
DROP INDEX "Job_status_createdAt_idx";
DROP INDEX "Job_finishedAt_idx";
CREATE UNIQUE INDEX "Job_projectId_idempotencyKey_key" ON "Job"("projectId", "idempotencyKey");
CREATE INDEX "Job_projectId_createdAt_id_idx" ON "Job"("projectId", "createdAt" DESC, "id" DESC);
CREATE INDEX "Job_projectId_status_createdAt_idx" ON "Job"("projectId", "status", "createdAt" DESC);
CREATE INDEX "Job_projectId_finishedAt_idx" ON "Job"("projectId", "finishedAt");
ALTER TABLE "Job" ADD CONSTRAINT "Job_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AlterTable: tool policies, per project
ALTER TABLE "ToolPolicy" ADD COLUMN "projectId" UUID NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001';
ALTER TABLE "ToolPolicy" ALTER COLUMN "projectId" DROP DEFAULT;
ALTER TABLE "ToolPolicy" DROP CONSTRAINT "ToolPolicy_pkey", ADD CONSTRAINT "ToolPolicy_pkey" PRIMARY KEY ("projectId", "server", "tool");

-- CreateTable
CREATE TABLE "AuditEntry" (
    "id" BIGSERIAL NOT NULL,
    "projectId" UUID NOT NULL,
    "jobId" UUID NOT NULL,
    "stepKey" TEXT NOT NULL,
    "server" TEXT NOT NULL,
    "tool" TEXT NOT NULL,
    "argsHash" TEXT NOT NULL,
    "outcome" "AuditOutcome" NOT NULL,
    "errorCode" TEXT,
    "attempt" INTEGER NOT NULL,
    "startedAt" TIMESTAMP(3) NOT NULL,
    "finishedAt" TIMESTAMP(3) NOT NULL,
    "durationMs" INTEGER NOT NULL,

    CONSTRAINT "AuditEntry_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "AuditEntry_projectId_id_idx" ON "AuditEntry"("projectId", "id" DESC);

-- CreateIndex
CREATE INDEX "AuditEntry_jobId_idx" ON "AuditEntry"("jobId");

-- AddForeignKey
ALTER TABLE "AuditEntry" ADD CONSTRAINT "AuditEntry_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;
