#!/usr/bin/env bash
# TEST-ONLY stand-ins for the upstream images that docker-compose.yml and the
# Dockerfile name, for machines with a Docker engine but no container
# registry (nothing can be pulled). Built from a Debian root made by
# debootstrap (Debian's packages) and `docker import`, and tagged with the
# upstream names so the real files run unchanged:
#
#   golang:<GO_VERSION>                 Debian root + the host's /usr/local/go,
#                                       + /goproxy, a file-based Go module proxy
#                                       made from the host's module cache
#   gcr.io/distroless/static-debian12:nonroot
#                                       passwd/group with nonroot (65532), /tmp,
#                                       CA certificates; nothing else, no shell
#   redis:7                             Debian's redis-server, the official
#                                       image's entrypoint behaviour
#   nginx:alpine                        Debian's nginx-light + wget
#   mongo:7                             the project's MongoDB-wire server
#                                       (tools/mongowire, FerretDB) + a `mongosh`
#                                       that answers the compose healthcheck
#
# NEVER push these: they are not the upstream images. On a machine that can
# pull, do not run this script (it would shadow the real images; `docker
# rmi` them to get the real ones back).
#
# Cached by content: each image carries a label with the hash of what it was
# built from and is rebuilt only when that changes; a second run takes
# seconds. Prints WSMQ_GOPROXY=... for the compose build on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="/usr/local/go/bin:$PATH"

SUITE=${WSMQ_DEBIAN_SUITE:-bookworm}
MIRROR=${WSMQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=ca-certificates,redis-server,redis-tools,nginx-light,wget
RECIPE_VERSION=1 # bump to force a rebuild of every stand-in
LABEL=org.wsmq.test-standin.key

say() { echo "compose-images: $*" >&2; }
die() { echo "compose-images: FAIL: $*" >&2; exit 1; }
hash() { sha256sum | cut -c1-16; }
# current KEY TAG: the image TAG exists and was built from KEY.
current() { [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$2" 2>/dev/null)" = "$1" ]; }

WORK=$(mktemp -d /var/tmp/wsmq-images.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The names the real files use (fail loudly if they change).
GO_VERSION=$(sed -n 's/^ARG GO_VERSION=//p' Dockerfile)
[ -n "$GO_VERSION" ] || die "no ARG GO_VERSION in Dockerfile"
DISTROLESS=$(awk '$1 == "FROM" && $2 ~ /distroless/ {print $2; exit}' Dockerfile)
[ -n "$DISTROLESS" ] || die "no distroless FROM in Dockerfile"
img() { awk -v s="$1" '/^  [a-z]/{svc=$1} svc==s":" && $1=="image:"{print $2; exit}' docker-compose.yml; }
REDIS_IMG=$(img redis); MONGO_IMG=$(img mongo); NGINX_IMG=$(img lb)
[ -n "$REDIS_IMG" ] && [ -n "$MONGO_IMG" ] && [ -n "$NGINX_IMG" ] || die "cannot read image names from docker-compose.yml"

HOST_GO=$(go env GOVERSION) # go1.26.8
case "$HOST_GO" in
  "go$GO_VERSION"|"go$GO_VERSION".*) ;;
  *) die "host Go is $HOST_GO, the Dockerfile wants $GO_VERSION" ;;
esac

# --- 1. Debian root (debootstrap) -------------------------------------------
BASE_KEY=$(echo "$RECIPE_VERSION $SUITE $MIRROR $PACKAGES" | hash)
BASE=wsmq-test/debian:$BASE_KEY
if current "$BASE_KEY" "$BASE"; then
  say "debian root: cached ($BASE)"
else
  t=$SECONDS
  say "debian root: debootstrap $SUITE (minbase + $PACKAGES) ..."
  mkdir "$WORK/root"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK/root" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap"; }
  # No daemons started by packages, no caches in the image.
  rm -rf "$WORK/root"/var/cache/apt/archives/*.deb "$WORK/root"/var/lib/apt/lists/* \
    "$WORK/root"/usr/share/doc "$WORK/root"/usr/share/man "$WORK/root"/usr/share/locale
  tar --numeric-owner -C "$WORK/root" -c . |
    docker import --change "LABEL $LABEL=$BASE_KEY" \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$WORK/root"
  say "debian root: built $BASE in $((SECONDS - t))s"
fi

# build TAG KEY DIR: docker build DIR (with its Dockerfile) as TAG, labelled KEY.
build() {
  local tag=$1 key=$2 dir=$3 t=$SECONDS
  docker build -q --label "$LABEL=$key" -t "$tag" "$dir" >/dev/null ||
    die "docker build $tag"
  say "$tag: built in $((SECONDS - t))s"
}

# --- 2. Go build image: golang:<GO_VERSION> ---------------------------------
GOROOT_HOST=$(go env GOROOT)
GO_KEY=$(echo "$BASE_KEY $HOST_GO $GOROOT_HOST" | hash)
GOTAG=wsmq-test/go:$GO_KEY
if current "$GO_KEY" "$GOTAG"; then
  say "go toolchain: cached ($GOTAG)"
else
  mkdir -p "$WORK/go"
  cp -a "$GOROOT_HOST" "$WORK/go/go"
  rm -rf "$WORK/go/go/pkg/obj" "$WORK/go/go/test" "$WORK/go/go/api"
  cat >"$WORK/go/Dockerfile" <<EOF
FROM $BASE
COPY go /usr/local/go
ENV GOLANG_VERSION=${HOST_GO#go} GOTOOLCHAIN=local GOPATH=/go \\
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go
WORKDIR /go
EOF
  build "$GOTAG" "$GO_KEY" "$WORK/go"
  rm -rf "$WORK/go"
fi

# The module proxy: exactly the modules the workspace needs, copied out of the
# host's module cache by a `go mod download` into an empty module cache
# (GOPROXY=file://<host cache>). The host cache is filled first from the
# normal proxy if something is missing.
MODFILES=$( (echo go.work; echo go.work.sum; git ls-files '*go.mod' '*go.sum' | grep -v '^tools/mongowire/') | sort -u)
DEPS_KEY=$( (echo "$GO_KEY"; for f in $MODFILES; do [ -f "$f" ] && { echo "$f"; cat "$f"; }; done) | hash)
GOLANG=golang:$GO_VERSION
if current "$DEPS_KEY" "$GOLANG"; then
  say "$GOLANG (module proxy): cached"
else
  t=$SECONDS
  HOSTCACHE=$(go env GOMODCACHE)/cache/download
  go mod download >/dev/null # no-op when the host cache has everything
  mkdir -p "$WORK/golang"
  GOMODCACHE="$WORK/modcache" GOPROXY="file://$HOSTCACHE" GOSUMDB=off GOFLAGS=-modcacherw \
    go mod download || die "module proxy: go mod download from the host cache"
  mv "$WORK/modcache/cache/download" "$WORK/golang/goproxy"
  chmod -R u+w "$WORK/modcache" && rm -rf "$WORK/modcache"
  cat >"$WORK/golang/Dockerfile" <<EOF
FROM $GOTAG
# TEST-ONLY: file-based Go module proxy (build with --build-arg GOPROXY=file:///goproxy).
COPY goproxy /goproxy
EOF
  build "$GOLANG" "$DEPS_KEY" "$WORK/golang"
  rm -rf "$WORK/golang"
  say "module proxy: $((SECONDS - t))s"
fi

# --- 3. distroless static nonroot ---------------------------------------------
DL_KEY=$(echo "$RECIPE_VERSION distroless $(sha256sum /etc/ssl/certs/ca-certificates.crt)" | hash)
if current "$DL_KEY" "$DISTROLESS"; then
  say "$DISTROLESS: cached"
else
  d=$WORK/distroless
  mkdir -p "$d/etc/ssl/certs" "$d/tmp" "$d/home/nonroot" "$d/root"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$d/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$d/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/"
  chmod 1777 "$d/tmp"; chmod 700 "$d/root" "$d/home/nonroot"; chown 65532:65532 "$d/home/nonroot"
  tar --numeric-owner -C "$d" -c . |
    docker import --change "LABEL $LABEL=$DL_KEY" \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      --change 'USER 65532' --change 'WORKDIR /home/nonroot' - "$DISTROLESS" >/dev/null
  say "$DISTROLESS: built"
fi

# --- 4. redis ----------------------------------------------------------------
d=$WORK/redis; mkdir -p "$d"
cat >"$d/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# TEST-ONLY stand-in of the official redis image's entrypoint: options alone
# (or a .conf first) mean redis-server; as root, /data is handed to the redis
# user and the server runs as that user. Like the official build, protected
# mode is off by default (the container network is the boundary).
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
um=$(umask)
[ "$um" = 0022 ] && umask 0077
if [ "$1" = redis-server ]; then
  shift
  if [ "${1%.conf}" != "${1:-}" ]; then conf=$1; shift; set -- "$conf" --protected-mode no "$@"
  else set -- --protected-mode no "$@"; fi
  set -- redis-server "$@"
fi
exec "$@"
EOF
chmod 755 "$d/docker-entrypoint.sh"
cat >"$d/Dockerfile" <<EOF
FROM $BASE
RUN mkdir /data && chown redis:redis /data
COPY docker-entrypoint.sh /usr/local/bin/
VOLUME /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
EOF
KEY=$( (echo "$BASE_KEY"; cat "$d"/*) | hash)
if current "$KEY" "$REDIS_IMG"; then say "$REDIS_IMG: cached"; else build "$REDIS_IMG" "$KEY" "$d"; fi

# --- 5. nginx ----------------------------------------------------------------
d=$WORK/nginx; mkdir -p "$d"
cat >"$d/Dockerfile" <<EOF
FROM $BASE
# Like the official image: only conf.d/*.conf, logs to the container's
# output, workers run as the user "nginx" (deploy/nginx.conf: user nginx).
RUN groupadd --system nginx \\
 && useradd --system --gid nginx --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nginx \\
 && rm -f /etc/nginx/sites-enabled/* \\
 && ln -sf /dev/stdout /var/log/nginx/access.log \\
 && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
KEY=$( (echo "$BASE_KEY"; cat "$d"/*) | hash)
if current "$KEY" "$NGINX_IMG"; then say "$NGINX_IMG: cached"; else build "$NGINX_IMG" "$KEY" "$d"; fi

# --- 6. mongo: the project's MongoDB-wire server -------------------------------
d=$WORK/mongo; mkdir -p "$d"
cat >"$d/mongosh" <<'EOF'
#!/bin/sh
# TEST-ONLY stand-in of mongosh: whatever it is asked (the compose
# healthcheck evaluates a ping), it sends {ping: 1} to the local server and
# exits 0 only when the answer is ok: 1.
exec wsmq-mongowire -ping 127.0.0.1:27017
EOF
chmod 755 "$d/mongosh"
cat >"$d/Dockerfile" <<EOF
FROM $BASE
COPY wsmq-mongowire mongosh /usr/local/bin/
RUN mkdir -p /data/db /data/configdb
VOLUME /data/db /data/configdb
EXPOSE 27017
CMD ["wsmq-mongowire", "-listen", "0.0.0.0:27017", "-data", "/data/db", "-log-level", "warn"]
EOF
KEY=$( (echo "$BASE_KEY"; cat "$d"/*; cat tools/mongowire/*.go tools/mongowire/go.mod tools/mongowire/go.sum) | hash)
if current "$KEY" "$MONGO_IMG"; then
  say "$MONGO_IMG: cached"
else
  (cd tools/mongowire && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags='-s -w' -o "$d/wsmq-mongowire" .) ||
    die "build tools/mongowire"
  build "$MONGO_IMG" "$KEY" "$d"
fi

echo "WSMQ_GOPROXY=file:///goproxy"
