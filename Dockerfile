# agent-sidecar: docker build -t agent-sidecar . && docker run -p 8080:8080 agent-sidecar --upstream http://agent:8000
# The image holds the single executable (npm run build:sea): Node.js 24 and the bundled
# sidecar in one file, no node_modules.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the image has Node 24 already, so the pinned `node` dev dependency is not needed.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
COPY scripts/build-sea.ts scripts/bundle.ts ./scripts/
RUN node scripts/build-sea.ts

# The executable needs glibc and libstdc++, which Debian's slim image has.
FROM debian:bookworm-slim
ENV NODE_ENV=production \
    # In a container the admin listener must be reachable by the orchestrator's probes.
    SIDECAR_ADMIN=0.0.0.0:9901
COPY --from=build /app/dist/agent-sidecar-linux-x64 /usr/local/bin/agent-sidecar
COPY config /etc/agent-sidecar/examples
# The uid `agent-sidecar inject` runs the container as (runAsNonRoot).
USER 1000:1000
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/agent-sidecar"]
CMD ["run"]
