# One image for the API and the workers (docker-compose.yml runs both from it).
# Node 24: isolated-vm 7 ships prebuilt binaries for it (glibc), so no compiler is needed.
FROM node:24-bookworm-slim

# bubblewrap confines the stdio MCP servers projects register (STDIO_SANDBOX=bwrap, the default):
# each runs in user, PID and mount namespaces of its own, and slirp4netns gives each a network of
# its own that cannot reach the container's loopback (STDIO_SANDBOX_NETWORK=isolated). The
# container must allow those and have /dev/net/tun: docker-compose.yml shows the options, the
# README says why.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap slirp4netns \
    && rm -rf /var/lib/apt/lists/*

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
