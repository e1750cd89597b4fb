# mlsam-node: DICOM listener, workers and admin in one image, CPU inference (the GPU worker:
# docker/gpu.Dockerfile).
#
#   docker build -t mlsam-node .
#   docker build --build-arg BASE_IMAGE=mlsam-base/debian:bookworm -t mlsam-node .   # without Docker Hub
#   docker run -p 11112:11112 -p 8080:8080 -e MLSAM_REDIS__URL=redis://redis:6379 \
#     -e MLSAM_HTTP__HOST=0.0.0.0 -e MLSAM_HTTP__PASSWORD=change-me -v mlsam-spool:/var/lib/mlsam mlsam-node
#
# BASE_IMAGE is any Debian 12 (bookworm) image: debian:bookworm-slim from Docker Hub, or one made
# without it (docker/base-image.sh: debootstrap + docker import). Node.js comes from the npm
# registry (docker/install-node.sh, sha512-checked), so no Node.js base image is needed. Certificates
# (*.crt) in docker/ca-certificates/ are trusted while building and at run time. Builds with the
# classic builder and with BuildKit; no `# syntax=` line on purpose (it makes BuildKit fetch its
# frontend from Docker Hub). `npm run docker:check` builds this image and runs a series through it.

ARG BASE_IMAGE=debian:bookworm-slim

# Node.js and npm on the Debian base.
FROM ${BASE_IMAGE} AS node
ARG NPM_REGISTRY
# Build stages only (the runtime stage starts again from BASE_IMAGE): the classic builder keeps them
# as an untagged ~1 GB image, the layer cache; `docker image prune -f --filter label=org.mlsam.stage`
# removes it.
LABEL org.mlsam.stage=node
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/
COPY docker/install-node.sh /usr/local/lib/mlsam/
RUN sh /usr/local/lib/mlsam/install-node.sh --npm
# Node's own CA list plus the system's (which holds docker/ca-certificates/).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    npm_config_update_notifier=false

FROM node AS build
ARG NPM_REGISTRY
LABEL org.mlsam.stage=build
WORKDIR /app
# onnxruntime-node's postinstall would download CUDA binaries; the CPU provider ships in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund ${NPM_REGISTRY:+--registry=$NPM_REGISTRY}
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${BASE_IMAGE} AS runtime
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    HOME=/var/lib/mlsam \
    MLSAM_SPOOL__DIR=/var/lib/mlsam/spool
WORKDIR /app
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/
COPY docker/setup-runtime.sh /usr/local/lib/mlsam/
RUN sh /usr/local/lib/mlsam/setup-runtime.sh
COPY --from=node /usr/local/bin/node /usr/local/bin/node
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
