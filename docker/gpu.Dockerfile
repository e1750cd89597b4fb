# GPU inference worker: `mlsam work` with ONNX Runtime's CUDA execution provider (CUDA 12 + cuDNN 9).
#
#   docker build -f docker/gpu.Dockerfile -t mlsam-node:gpu .
#   docker run --gpus all -e MLSAM_REDIS__URL=redis://redis:6379 -v mlsam-spool:/var/lib/mlsam mlsam-node:gpu
#
# The worker logs, and reports in /metrics and the dashboard, the provider it really runs on; it
# falls back to CPU (with a log line) when CUDA cannot be loaded. Not built on the development
# machine (no CUDA base image, no NuGet access there): see the README, "Deployment".

ARG BASE_IMAGE=debian:bookworm-slim
# CUDA 12 runtime + cuDNN 9, what onnxruntime-node 1.2x/1.3x's CUDA provider links against.
ARG CUDA_BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

FROM ${BASE_IMAGE} AS node
ARG NPM_REGISTRY
# Build stages only: `docker image prune -f --filter label=org.mlsam.stage` removes what the classic builder keeps of them.
LABEL org.mlsam.stage=node
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/
COPY docker/install-node.sh /usr/local/lib/mlsam/
RUN sh /usr/local/lib/mlsam/install-node.sh --npm
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    npm_config_update_notifier=false

FROM node AS build-gpu
ARG NPM_REGISTRY
LABEL org.mlsam.stage=build
WORKDIR /app
# onnxruntime-node's postinstall downloads its CUDA 12 provider libraries (NuGet
# Microsoft.ML.OnnxRuntime.Gpu.Linux, same version as the package) into node_modules.
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund ${NPM_REGISTRY:+--registry=$NPM_REGISTRY} \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${CUDA_BASE_IMAGE} AS gpu-worker
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    HOME=/var/lib/mlsam \
    MLSAM_SPOOL__DIR=/var/lib/mlsam/spool \
    MLSAM_MODEL__PROVIDERS='["cuda","cpu"]' \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/
COPY docker/setup-runtime.sh /usr/local/lib/mlsam/
RUN sh /usr/local/lib/mlsam/setup-runtime.sh
# The same Node.js binary (it needs glibc >= 2.28; Ubuntu 22.04 has 2.35).
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=build-gpu --chown=root:root /app/node_modules ./node_modules
COPY --from=build-gpu --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root config ./config
COPY --chown=root:root models ./models
USER mlsam
VOLUME ["/var/lib/mlsam"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["work"]
