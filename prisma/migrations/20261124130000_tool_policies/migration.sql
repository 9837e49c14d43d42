-- AlterEnum
ALTER TYPE "JobStatus" ADD VALUE 'waiting';

-- CreateEnum
CREATE TYPE "ToolPolicyKind" AS ENUM ('allow', 'approve', 'deny');

-- CreateEnum
CREATE TYPE "ApprovalStatus" AS ENUM ('pending', 'approved', 'rejected');

-- CreateTable
CREATE TABLE "ToolPolicy" (
    "server" TEXT NOT NULL,
    "tool" TEXT NOT NULL,
    "policy" "ToolPolicyKind" NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ToolPolicy_pkey" PRIMARY KEY ("server","tool")
);

-- CreateTable
CREATE TABLE "Approval" (
    "jobId" UUID NOT NULL,
    "stepKey" TEXT NOT NULL,
    "server" TEXT NOT NULL,
    "tool" TEXT NOT NULL,
    "args" JSONB NOT NULL,
    "status" "ApprovalStatus" NOT NULL DEFAULT 'pending',
    "reason" TEXT,
    "requestedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "decidedAt" TIMESTAMP(3),

    CONSTRAINT "Approval_pkey" PRIMARY KEY ("jobId","stepKey")
);

-- AddForeignKey
ALTER TABLE "Approval" ADD CONSTRAINT "Approval_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
