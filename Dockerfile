# One multi-stage build for every wsmq image. Pick the service with --target:
#   docker build --target gateway   -t wsmq-gateway .
#   docker build --target auth      -t wsmq-auth .
#   docker build --target publisher -t wsmq-publisher .
# docker-compose.yml does this for you. The binaries are static (CGO_ENABLED=0),
# built from the go.work workspace, and run as the distroless "nonroot" user.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
# The Go module proxy the build downloads from: the normal one unless told
# otherwise (docker-compose.yml passes WSMQ_GOPROXY; the compose test feeds a
# file:// proxy made from the host's module cache).
ARG GOPROXY=https://proxy.golang.org,direct
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# Modules first, in their own layer: a source change does not download them
# again. No BuildKit-only syntax (RUN --mount), so the same file builds with
# BuildKit (docker compose v2, docker buildx) and with the classic builder
# (Debian's docker.io + docker-compose 1.29).
COPY go.work go.work.sum ./
COPY gen/go.mod gen/go.sum gen/
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/auth/go.mod services/auth/go.sum services/auth/
COPY services/gateway/go.mod services/gateway/go.sum services/gateway/
COPY services/publisher/go.mod services/publisher/go.sum services/publisher/
COPY tools/go.mod tools/go.sum tools/
RUN go mod download
# The whole workspace (see .dockerignore): go.work ties gen, pkg, the three
# services and tools together, so this builds exactly what `make build` builds.
COPY . .
RUN set -eux; \
    mkdir -p /out; \
    GOPROXY=off go build -ldflags='-s -w' -o /out/ \
      ./services/auth ./services/publisher ./services/gateway \
      ./tools/healthprobe ./tools/wsmqctl; \
    for s in auth publisher gateway; do mv /out/$s /out/wsmq-$s; done

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
