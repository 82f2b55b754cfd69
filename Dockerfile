# Spool in one image. First version: it runs `spool migrate` by default;
# `spool serve` becomes the default command when the server lands.
#   docker build -t spool .
#   docker run --rm -e DATABASE_URL=postgres://user:pass@db:5432/app spool migrate
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY sql ./sql
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/sql ./sql
USER node
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["migrate"]
