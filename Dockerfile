# syntax=docker/dockerfile:1
# mlsam-node: DICOM listener, workers and admin in one image. Build: docker build -t mlsam-node .
# Run:   docker run -p 11112:11112 -p 8080:8080 -e MLSAM_REDIS__URL=redis://redis:6379 \
#          -e MLSAM_HTTP__HOST=0.0.0.0 -e MLSAM_HTTP__PASSWORD=change-me -v mlsam-spool:/var/lib/mlsam mlsam-node

FROM node:20-bookworm AS build
WORKDIR /app
# onnxruntime-node's postinstall would download CUDA binaries; the CPU provider ships in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    MLSAM_SPOOL__DIR=/var/lib/mlsam/spool
WORKDIR /app
RUN groupadd --system mlsam && useradd --system --gid mlsam --home-dir /app --shell /usr/sbin/nologin mlsam \
 && mkdir -p /var/lib/mlsam/spool && chown -R mlsam:mlsam /var/lib/mlsam
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root config ./config
COPY --chown=root:root models ./models
USER mlsam
VOLUME ["/var/lib/mlsam"]
EXPOSE 11112 8080
# C-ECHO against our own listener: healthy only when the DICOM front door answers.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["node", "dist/cli/main.js", "echo", "--host", "127.0.0.1"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
