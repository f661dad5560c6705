# syntax=docker/dockerfile:1
# One image for the API, the worker and the one-shot migrate/seed jobs; the command picks the
# role (see docker-compose.yml). Node 20 on Debian: @temporalio/core-bridge ships glibc builds.
ARG NODE_IMAGE=node:20-bookworm-slim

##### build: all dependencies, compile TypeScript, bundle the workflows once #####
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency install scripts: everything the project needs ships inside the packages.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json prisma.config.ts ./
COPY prisma ./prisma
COPY scripts ./scripts
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
# `npm run build` generates the Prisma client (prebuild), then tsc → dist/.
RUN npm run build \
 && node dist/scripts/build-workflow-bundle.js dist/workflow-bundle.js

##### runtime: production dependencies and compiled JavaScript only #####
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The migration runner reads the SQL files next to its compiled code (dist/src/db → dist/prisma).
COPY prisma/migrations ./dist/prisma/migrations
# Workers load the bundle made at build time instead of running webpack at every start.
ENV WORKER_WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js
# Node sizes its heap from the host, not the container: cap it for a 1 GiB container (75 %,
# leaving room for the Rust core, buffers and stacks). Override together with the memory limit.
ENV NODE_OPTIONS=--max-old-space-size=768
USER node
EXPOSE 3000
CMD ["node", "dist/src/api/server.js"]
