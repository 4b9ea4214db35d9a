# esp-ingest image: Node 20 running the service as one JavaScript bundle (`npm run build`:
# esbuild, the same transform tsx applies, ahead of time), which saves tsx's loader thread and
# about 25 MB of resident memory. The operator tools (`npm run rejects`, `npm run broker`) run
# from the TypeScript sources through tsx, a runtime dependency in package.json, so
# `npm ci --omit=dev` keeps it (and esbuild with it). Two stages: the first installs the
# production dependencies and builds the bundle, the second holds only what runs.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
# The lockfile pins every version (MQTT.js internals are relied on by src/ingress/puback-gate.ts).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY src/ src/
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app

# Only what runs: production node_modules, the service's bundle, the sources (npm run broker and
# the operator tool, npm run rejects), SQL migrations (read from sql/ at start-up by
# src/schema/migrate.ts, two levels above the bundle as above src/schema/) and tsconfig.json (read
# by tsx). Files stay root-owned, read-only to the service user.
COPY --from=deps /app/node_modules/ node_modules/
COPY --from=deps /app/dist/service/ dist/service/
COPY package.json package-lock.json tsconfig.json ./
COPY sql/ sql/
COPY src/ src/

# The image's unprivileged user (uid 1000); the service writes nothing to disk.
USER node

# HTTP sidecar: /livez, /readyz, /metrics (HTTP_PORT default).
EXPOSE 9464

# /readyz: 200 once the database is reachable, the schema migrated and the MQTT subscription
# active. The slim image has no curl, so node's fetch; it follows HTTP_PORT when that is changed.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 9464) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# The signal src/main.ts handles for a graceful stop: last flush and PUBACKs within
# SHUTDOWN_DEADLINE_MS, then exit.
STOPSIGNAL SIGTERM

# node itself on the bundle, not `npm start`: SIGTERM from `docker stop` then reaches the handler in
# src/main.ts directly, and main.ts's exit code (0 clean, 1 deadline/fatal, 2 bad config) is the
# container's. `npm start` would put npm, a shell and the tsx CLI in between, each a process the
# signal must cross within the grace period, and npm reports a non-zero exit as its own error.
# An init process (compose `init: true`, `docker run --init`) still helps: it reaps zombies and
# forwards signals; main.ts handles SIGTERM from its first line on.
# --enable-source-maps: stack traces in the log name the TypeScript sources' lines.
CMD ["node", "--enable-source-maps", "dist/service/main.js"]
