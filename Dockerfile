# esp-ingest image: Node 20 running the TypeScript sources through tsx (no build step; tsx is a
# runtime dependency in package.json, so `npm ci --omit=dev` keeps it).
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so a source change reuses this layer. The lockfile pins every version
# (MQTT.js internals are relied on by src/ingress/puback-gate.ts).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Only what runs: service sources, the embedded broker (npm run broker), SQL migrations (read from
# sql/ at start-up by src/sink/migrate.ts) and tsconfig.json (read by tsx). Files stay root-owned,
# read-only to the service user.
COPY tsconfig.json ./
COPY sql/ sql/
COPY broker/ broker/
COPY src/ src/

USER node

# HTTP sidecar: /livez, /readyz, /metrics (HTTP_PORT default).
EXPOSE 9464

# node itself, not `npm start`: SIGTERM from `docker stop` then reaches the handler in
# src/main.ts directly (graceful stop: last flush and PUBACKs within SHUTDOWN_DEADLINE_MS), and
# main.ts's exit code (0 clean, 1 deadline/fatal, 2 bad config) is the container's. `npm start`
# would put npm, a shell and the tsx CLI in between, each a process the signal must cross
# within the grace period, and npm reports a non-zero exit as its own error.
# An init process (compose `init: true`, `docker run --init`) still helps: it reaps zombies and
# forwards signals; main.ts handles SIGTERM from its first line on.
CMD ["node", "--import", "tsx", "src/main.ts"]
