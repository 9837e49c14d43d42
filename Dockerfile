# One image for the API and the workers (docker-compose.yml runs both from it).
# Node 24: isolated-vm 7 ships prebuilt binaries for it (glibc), so no compiler is needed.
FROM node:24-bookworm-slim

WORKDIR /app

# Everything first: npm ci needs every workspace's package.json, and its postinstall
# (`prisma generate`) needs prisma/. .dockerignore keeps node_modules, .env and .git out.
COPY . .
# Not NODE_ENV=production: the workspace runs on the `node` and `prisma` dev dependencies.
RUN npm ci --no-fund --no-audit && npm cache clean --force

ENV HOST=0.0.0.0 \
    PORT=3000
EXPOSE 3000

# Runs as an unprivileged user; the code stays root-owned (read-only to it).
USER node

# The API; docker-compose.yml runs `npm run setup` before it, and the workers with `npm run worker`.
CMD ["node", "apps/api/src/server.ts"]
