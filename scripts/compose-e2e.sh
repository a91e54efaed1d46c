#!/usr/bin/env bash
# Compose end-to-end test (make compose-test; .ci/run when a Docker engine
# answers): the unchanged docker-compose.yml, `up -d --build` for real, then
# tools/composetest drives it from the host (users, login, websockets through
# the lb, sends to the publisher's host port, gateway scale-out and kill,
# Redis restart and kill, down + up). Needs a Docker engine and a compose
# command (`docker compose`, else docker-compose).
#
# Images that cannot be pulled (no registry) are built first by
# scripts/compose-images.sh as TEST-ONLY stand-ins; set WSMQ_COMPOSE_PULL=1 on
# a machine that can pull to use the real upstream images instead.
#
# Secrets: a fresh random .env in a private temporary directory (never the
# repository's .env), removed on exit. The stack binds to loopback only and is
# torn down with `down -v` on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="/usr/local/go/bin:$PATH"

t0=$SECONDS
phase_t=$SECONDS
phase() { echo "compose-e2e: == $* (phase took $((SECONDS - phase_t))s, total $((SECONDS - t0))s)"; phase_t=$SECONDS; }
die() { echo "compose-e2e: FAIL: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose)
else
  die "neither 'docker compose' nor docker-compose"
fi
echo "compose-e2e: using $("${COMPOSE[@]}" version 2>/dev/null | head -n1)"

# WSMQ_E2E_TAG: the image tag of this run (default e2e), so two runs on one
# engine do not rebuild each other's images. WSMQ_E2E_SCENARIOS: "main ha"
# (default), or one of them. The project names carry the PID.
TAG=${WSMQ_E2E_TAG:-e2e}
SCENARIOS=${WSMQ_E2E_SCENARIOS:-main ha}
PROJECT=wsmq-e2e-$$
PROJECT_HA=wsmq-e2e-ha-$$
dangling() { docker volume ls -q --filter dangling=true | sort; }
DANGLING_BEFORE=$(dangling)
WORK=$(mktemp -d)
chmod 700 "$WORK"
ENVFILE=$WORK/env
ENVFILE_HA=$WORK/env-ha
C=("${COMPOSE[@]}" -p "$PROJECT" --env-file "$ENVFILE" -f "$ROOT/docker-compose.yml")
C_HA=("${COMPOSE[@]}" -p "$PROJECT_HA" --env-file "$ENVFILE_HA" -f "$ROOT/docker-compose.yml" --profile ha)

# teardown PROJECT ENVFILE COMPOSE...: down -v, then fails (returns 1) when
# a container or volume of the project is left.
teardown() {
  local project=$1 envfile=$2 rc=0
  shift 2
  if [ -f "$envfile" ]; then
    echo "compose-e2e: down -v ($project)"
    "$@" down -v --remove-orphans -t 5 >"$WORK/down.log" 2>&1 || cat "$WORK/down.log" >&2
  fi
  left=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
  if [ -n "$left" ]; then
    echo "compose-e2e: removing leftover containers: $left" >&2
    docker rm -f $left >/dev/null 2>&1 || true
    rc=1
  fi
  vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$project")
  if [ -n "$vols" ]; then
    echo "compose-e2e: removing leftover volumes: $vols" >&2
    docker volume rm $vols >/dev/null 2>&1 || true
    rc=1
  fi
  return $rc
}

# child CMD...: runs CMD in a process group of its own and waits for it.
# Bash runs a signal's trap only once a foreground command has ended (a
# SIGTERM would wait out a whole scenario); a background child and `wait`
# let the trap run at once, and cleanup stops the child's whole group (the
# driver and the compose commands it started, such as a running `up`)
# before `down -v`, so nothing is created after the teardown.
CHILD=
child() {
  local rc=0
  setsid -w "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=
  return "$rc"
}

cleanup() {
  rc=$?
  trap - EXIT INT TERM
  if [ -n "$CHILD" ]; then
    echo "compose-e2e: stopping the running driver (process group $CHILD)" >&2
    kill -TERM -- "-$CHILD" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$CHILD" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$CHILD" 2>/dev/null || true
  fi
  teardown "$PROJECT" "$ENVFILE" "${C[@]}" || rc=1
  teardown "$PROJECT_HA" "$ENVFILE_HA" "${C_HA[@]}" || rc=1
  # Anonymous volumes (an image's VOLUME without a mount) carry no label:
  # any new dangling one is a leak of the compose file.
  leaked=$(comm -13 <(echo "$DANGLING_BEFORE") <(dangling))
  if [ -n "$leaked" ]; then
    echo "compose-e2e: FAIL: anonymous volumes left behind: $leaked" >&2
    docker volume rm $leaked >/dev/null 2>&1 || true
    rc=1
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Base images.
if [ "${WSMQ_COMPOSE_PULL:-}" = 1 ]; then
  GOPROXY_BUILD=
else
  GOPROXY_BUILD=$(bash scripts/compose-images.sh | tail -n1 | sed -n 's/^WSMQ_GOPROXY=//p')
  [ -n "$GOPROXY_BUILD" ] || die "compose-images.sh"
fi
phase "stand-in images ready"

# The lb asks for nofile 65536; an engine whose own limit is lower cannot
# start it. Probe with a throwaway container and lower WSMQ_LB_NOFILE then.
LB_NOFILE=65536
if ! docker run --rm --ulimit nofile=65536:65536 --entrypoint true redis:7 >/dev/null 2>&1; then
  LB_NOFILE=$(docker run --rm --entrypoint sh redis:7 -c 'ulimit -Hn')
  echo "compose-e2e: the engine cannot give nofile 65536; the lb gets WSMQ_LB_NOFILE=$LB_NOFILE"
fi

# The network's /24 (WSMQ_NETWORK_PREFIX, fixed addresses of the Redis nodes
# and Sentinels): the default 10.213.0 unless a Docker network or a host
# route overlaps it (another run on this engine), else the next free one.
NET_PREFIX=$(python3 - "$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' $(docker network ls -q))" "$(ip -4 route show 2>/dev/null | awk '{print $1}')" <<'PY'
import ipaddress, sys
used = []
for w in " ".join(sys.argv[1:]).split():
    try:
        used.append(ipaddress.ip_network(w, strict=False))
    except ValueError:  # "default" and the like
        pass
for n in range(256):
    net = ipaddress.ip_network(f"10.213.{n}.0/24")
    if not any(u.version == 4 and net.overlaps(u) for u in used):
        print(f"10.213.{n}")
        break
PY
)
[ -n "$NET_PREFIX" ] || die "no free 10.213.N.0/24 for the compose network"
echo "compose-e2e: network ${NET_PREFIX}.0/24"

# 2. A .env with real random secrets, loopback ports that are free.
secret() { head -c 48 /dev/urandom | base64 -w0 | tr -d '/+='; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
KEY1=$(secret)
# envfile FILE EXTRA...: fresh secrets and free loopback ports; prints the
# ports as "HTTP PUB".
envfile() {
  local f=$1 http pub pubhttp
  shift
  http=$(freeport)
  pub=$(freeport)
  [ "$http" != "$pub" ] || pub=$(freeport)
  pubhttp=$(freeport)
  (
    umask 077
    {
      echo "WSMQ_JWT_SECRET=$(secret)"
      echo "WSMQ_AUTH_ADMIN_TOKEN=$(secret)"
      echo "WSMQ_AUTH_GATEWAY_TOKEN=$(secret)"
      echo "WSMQ_PUBLISHER_KEYS=$KEY1,$(secret)"
      echo "WSMQ_HTTP_BIND=127.0.0.1"
      echo "WSMQ_HTTP_PORT=$http"
      echo "WSMQ_PUBLISHER_PORT=$pub"
      echo "WSMQ_PUBLISHER_HTTP_PORT=$pubhttp"
      echo "WSMQ_IMAGE_TAG=$TAG"
      echo "WSMQ_LB_NOFILE=$LB_NOFILE"
      echo "WSMQ_NETWORK_PREFIX=$NET_PREFIX"
      [ -z "$GOPROXY_BUILD" ] || echo "WSMQ_GOPROXY=$GOPROXY_BUILD"
      for l in "$@"; do echo "$l"; done
    } >"$f"
  )
  echo "$http $pub"
}

# 3. The driver (Go build cache: seconds when unchanged).
go build -o "$WORK/composetest" ./tools/composetest
phase "driver built"

# 4. The scenarios.
case " $SCENARIOS " in *" main "*)
  read -r HTTP_PORT PUB_PORT < <(envfile "$ENVFILE")
  WSMQ_PUBLISHER_KEY=$KEY1 child "$WORK/composetest" \
    -compose "${C[*]}" \
    -http "http://127.0.0.1:$HTTP_PORT" -publisher "127.0.0.1:$PUB_PORT"
  phase "main scenario passed"
  teardown "$PROJECT" "$ENVFILE" "${C[@]}" || die "main scenario left containers or volumes"
  rm -f "$ENVFILE"
  phase "main scenario torn down"
  ;;
esac

# 5. The ha profile of the same file: two replicas and three Sentinels, the
# services on the Sentinels, durable acks (one replica confirms each send).
case " $SCENARIOS " in *" ha "*)
  read -r HTTP_PORT PUB_PORT < <(envfile "$ENVFILE_HA" \
    "WSMQ_REDIS_URL=redis+sentinel://sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/0?master_name=wsmq" \
    "WSMQ_PUBLISHER_MIN_REPLICAS=1")
  WSMQ_PUBLISHER_KEY=$KEY1 child "$WORK/composetest" -scenario ha \
    -compose "${C_HA[*]}" -network "${PROJECT_HA}_default" \
    -http "http://127.0.0.1:$HTTP_PORT" -publisher "127.0.0.1:$PUB_PORT"
  phase "ha scenario passed"
  teardown "$PROJECT_HA" "$ENVFILE_HA" "${C_HA[@]}" || die "ha scenario left containers or volumes"
  rm -f "$ENVFILE_HA"
  phase "ha scenario torn down"
  ;;
esac

# Disk: each source version leaves its build stage (~1.6 GB) as a dangling
# image. Tag the newest one (the layer cache of the next run; all cached, so
# seconds) and remove the older ones, which carry the stand-ins' label.
# WSMQ_E2E_PRUNE=0 skips it (a second run sharing the engine).
if [ -n "$GOPROXY_BUILD" ] && [ "${WSMQ_E2E_PRUNE:-1}" = 1 ]; then
  docker build -q --target build --build-arg "GOPROXY=$GOPROXY_BUILD" -t wsmq-test/build-cache:latest . >/dev/null 2>&1 &&
    docker image prune -f --filter label=org.wsmq.test-standin.key >/dev/null 2>&1 || true
  phase "old build stages pruned"
fi
