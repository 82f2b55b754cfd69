# Spool in one image: `spool serve` (HTTP API on 8080, workers for the task
# folder named by SPOOL_TASKS, maintenance) by default. Without SPOOL_TASKS it
# serves the API only; without DATABASE_URL, on an embedded PostgreSQL whose
# data is in /app/.spool (mount a volume there to keep it).
#   docker build -t spool .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://user:pass@db:5432/app \
#     -v $PWD/tasks:/tasks -e SPOOL_TASKS=/tasks spool
#   docker run --rm -e DATABASE_URL=… spool migrate      # or api, work, stats, dlq list, …
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY sql ./sql
# npm ci builds dist/ itself (the package's prepare script), so the sources come first.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/sql ./sql
RUN mkdir -p /app/.spool && chown node /app/.spool
ENV SPOOL_PORT=8080
# Inside a container the API must listen on every interface; every route but the health checks needs an API key (SPOOL_AUTH=keys).
ENV SPOOL_HOST=0.0.0.0
EXPOSE 8080
USER node
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
