-- CreateIndex
CREATE INDEX "Job_finishedAt_idx" ON "Job"("finishedAt");
