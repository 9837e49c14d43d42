-- Which projects may register stdio MCP servers (a command run on Turtle's hosts): the operator's
-- project, and the ones the operator allows. Others register HTTP servers.

-- AlterTable
ALTER TABLE "Project" ADD COLUMN "allowStdioServers" BOOLEAN NOT NULL DEFAULT false;

UPDATE "Project" SET "allowStdioServers" = true WHERE "operator";
