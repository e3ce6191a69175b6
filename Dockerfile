# agent-sidecar: docker build -t agent-sidecar . && docker run -p 8080:8080 agent-sidecar --upstream http://agent:8000
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# No install scripts: the image has Node 24 already, so the pinned `node` dev dependency is not needed.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts

FROM node:24-slim
ENV NODE_ENV=production \
    # In a container the admin listener must be reachable by the orchestrator's probes.
    SIDECAR_ADMIN=0.0.0.0:9901
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config ./config
USER node
EXPOSE 8080 9901
ENTRYPOINT ["node", "bin/agent-sidecar.js"]
CMD ["run"]
