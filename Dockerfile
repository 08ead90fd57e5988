# The controller and gateway image (charts/airollout). Not built on the development machines:
# they have no Docker engine. The Go stage builds the Pulumi CLI and Kubernetes provider the
# controller runs, the same way `make tools` does.
FROM golang:1.26-bookworm AS tools
WORKDIR /src
COPY hack ./hack
RUN AIROLLOUT_CACHE=/cache bash hack/build-tool.sh pulumi && AIROLLOUT_CACHE=/cache bash hack/build-tool.sh pulumi-kubernetes

FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts
COPY bin ./bin
COPY controller ./controller
COPY infra ./infra
COPY crds ./crds
COPY hack/versions.env ./hack/versions.env
COPY --from=tools --chown=node:node /cache/bin /home/node/.cache/airollout/bin
ENV AIROLLOUT_CACHE=/home/node/.cache/airollout
USER node
ENTRYPOINT ["/app/bin/airollout"]
CMD ["controller"]
