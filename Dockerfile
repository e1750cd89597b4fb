# syntax=docker/dockerfile:1
# mlsam-node: DICOM listener, workers and admin in one image. Build: docker build -t mlsam-node .
# GPU inference worker (CUDA 12 + cuDNN 9): docker build --target gpu-worker -t mlsam-node:gpu .  (first stages below)
# Run:   docker run -p 11112:11112 -p 8080:8080 -e MLSAM_REDIS__URL=redis://redis:6379 \
#          -e MLSAM_HTTP__HOST=0.0.0.0 -e MLSAM_HTTP__PASSWORD=change-me -v mlsam-spool:/var/lib/mlsam mlsam-node

# ---------------------------------------------------------------------------------------------
# GPU worker: `mlsam work` with ONNX Runtime's CUDA execution provider.
#   docker build --target gpu-worker -t mlsam-node:gpu .
#   docker run --gpus all -e MLSAM_REDIS__URL=redis://redis:6379 -v mlsam-spool:/var/lib/mlsam mlsam-node:gpu
# The worker logs, and reports in /metrics and the dashboard, the provider it really runs on; it
# falls back to CPU (with a log line) when CUDA cannot be loaded.

FROM node:20-bookworm AS build-gpu
WORKDIR /app
# onnxruntime-node's postinstall downloads its CUDA 12 provider libraries (NuGet
# Microsoft.ML.OnnxRuntime.Gpu.Linux, same version as the package) into node_modules.
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# CUDA 12 runtime + cuDNN 9, what onnxruntime-node 1.2x/1.3x's CUDA provider links against.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04 AS gpu-worker
# Node 20 from the official image (its binary needs glibc >= 2.28; Ubuntu 22.04 has 2.35).
COPY --from=node:20-bookworm-slim /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    MLSAM_SPOOL__DIR=/var/lib/mlsam/spool \
    MLSAM_MODEL__PROVIDERS='["cuda","cpu"]' \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
# Fonts for the text, legends and charts burned into the Secondary Captures (sharp renders SVG with fontconfig).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core fontconfig && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mlsam && useradd --system --uid 10001 --gid mlsam --home-dir /app --shell /usr/sbin/nologin mlsam \
 && mkdir -p /var/lib/mlsam/spool && chown -R mlsam:mlsam /var/lib/mlsam
COPY --from=build-gpu --chown=root:root /app/node_modules ./node_modules
COPY --from=build-gpu --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root config ./config
COPY --chown=root:root models ./models
USER mlsam
VOLUME ["/var/lib/mlsam"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["work"]

# ---------------------------------------------------------------------------------------------
# The default image (last stage, what a plain `docker build .` makes): every role, CPU inference.

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
# Fonts for the text burned into the Secondary Captures; fixed uid/gid (also in the gpu-worker
# target): containers of both images share one spool volume.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core fontconfig && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mlsam && useradd --system --uid 10001 --gid mlsam --home-dir /app --shell /usr/sbin/nologin mlsam \
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
