# syntax=docker/dockerfile:1
# One multi-stage build for every wsmq image. Pick the service with --target:
#   docker build --target gateway   -t wsmq-gateway .
#   docker build --target auth      -t wsmq-auth .
#   docker build --target publisher -t wsmq-publisher .
# docker-compose.yml does this for you. The binaries are static (CGO_ENABLED=0),
# built from the go.work workspace, and run as the distroless "nonroot" user.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# The whole workspace (see .dockerignore): go.work ties gen, pkg, the three
# services and tools together, so this builds exactly what `make build` builds.
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eux; \
    mkdir -p /out; \
    for s in auth publisher gateway; do \
      go build -ldflags='-s -w' -o /out/wsmq-$s ./services/$s; \
    done; \
    for t in healthprobe wsmqctl; do \
      go build -ldflags='-s -w' -o /out/$t ./tools/$t; \
    done

# Shared runtime: no shell, no package manager, uid/gid 65532 ("nonroot").
# healthprobe answers the compose healthchecks (no curl here); wsmqctl is the
# CLI (`docker compose exec gateway wsmqctl ...`).
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /out/healthprobe /out/wsmqctl /usr/local/bin/
USER nonroot:nonroot

FROM runtime AS auth
COPY --from=build /out/wsmq-auth /usr/local/bin/wsmq-auth
ENV WSMQ_AUTH_LISTEN=:9091 WSMQ_AUTH_METRICS_LISTEN=:9191
EXPOSE 9091 9191
ENTRYPOINT ["/usr/local/bin/wsmq-auth"]
CMD ["serve"]

FROM runtime AS publisher
COPY --from=build /out/wsmq-publisher /usr/local/bin/wsmq-publisher
ENV WSMQ_PUBLISHER_LISTEN=:9092 WSMQ_PUBLISHER_ADMIN_LISTEN=:9192
EXPOSE 9092 9192
ENTRYPOINT ["/usr/local/bin/wsmq-publisher"]

FROM runtime AS gateway
COPY --from=build /out/wsmq-gateway /usr/local/bin/wsmq-gateway
ENV WSMQ_GATEWAY_LISTEN=:3000
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/wsmq-gateway"]
