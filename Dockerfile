# The controller and gateway image (charts/airollout). Not built on the development machines:
# they have no Docker engine. The Go stage builds the Pulumi CLI and Kubernetes provider the
# controller runs, the same way `make tools` does.
FROM golang:1.26-bookworm AS tools
WORKDIR /src
COPY hack ./hack
RUN AIROLLOUT_CACHE=/cache bash hack/build-tool.sh pulumi && AIROLLOUT_CACHE=/cache bash hack/build-tool.sh pulumi-kubernetes

FROM node:24.21.0-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts
# The `node` package pins Node.js for bin/airollout; its install script (skipped above) would
# download a second copy of the Node this image already has: point it at that one.
RUN mkdir -p node_modules/node/bin && ln -sf /usr/local/bin/node node_modules/node/bin/node
COPY bin ./bin
COPY controller ./controller
COPY infra ./infra
COPY crds ./crds
COPY hack/versions.env ./hack/versions.env
COPY --from=tools --chown=node:node /cache/bin /home/node/.cache/airollout/bin
ENV AIROLLOUT_CACHE=/home/node/.cache/airollout
USER node
# The Pulumi toolchain directory (links to the CLI, its Kubernetes provider and this Node) is made
# now: at run time the root filesystem is read-only (see the chart).
RUN node --input-type=module -e "await (await import('/app/controller/src/dev/toolchain.ts')).ensurePulumiToolchain(console.log)"
ENTRYPOINT ["/app/bin/airollout"]
CMD ["controller"]
