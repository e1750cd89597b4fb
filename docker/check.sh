#!/usr/bin/env bash
# npm run docker:check — the CPU image built and run for real, on this machine's Docker daemon:
#
#   1. compose.yaml passes `docker-compose config` (v1, Debian 12's 1.29) and `docker compose config`
#      (v2), each where installed;
#   2. the runtime image builds (Dockerfile, BASE_IMAGE = $MLSAM_DOCKER_BASE_IMAGE, else a Debian 12
#      image made with docker/base-image.sh when there is none), with this machine's extra CA
#      certificates ($MLSAM_DOCKER_CA_DIR, default /usr/local/share/ca-certificates) streamed into
#      the build context (docker/ca-certificates/), never copied into the working tree;
#   3. a Redis container and `mlsam serve` from the image on a private bridge network, the node's
#      DICOM and HTTP ports published on 127.0.0.1 only;
#   4. the image's own health check command (C-ECHO inside the container), a C-ECHO from the host
#      (mlsam echo, and DCMTK echoscu where installed), /healthz and /readyz through the published port;
#   5. a 24-slice phantom chest CT sent with `mlsam send`, scored in the container by the shipped
#      model, its SR (and SC) written into the container's spool; the SR read back with dsrdump
#      where installed.
#
# Everything it starts (containers, network) is removed at the end, also on failure or Ctrl-C;
# images are kept (a rebuild reuses the layer cache). Prints how long each step took, under it.
#
# The classic builder also keeps the Dockerfile's build stages (node, build) as an untagged image
# of about 1 GB: that is the layer cache that makes a rebuild take seconds. They carry the label
# org.mlsam.stage; MLSAM_DOCKER_PRUNE=1 removes them at the end (the next build is then a full one),
# or at any time: docker image prune -f --filter label=org.mlsam.stage
#
# Under `set -o pipefail` no pipeline here ends in `grep -q`: grep -q exits at the first match, the
# command writing into the pipe then dies of SIGPIPE (status 141) and pipefail fails the pipeline
# although the text was there. `grep PATTERN >/dev/null` reads to the end (tests/scripts/pipefail.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

# This script's own MLSAM_DOCKER_* settings stay in this shell: the `mlsam` it runs would read any
# exported MLSAM_* variable as configuration (and refuse the unknown key "docker").
export -n MLSAM_DOCKER_IMAGE MLSAM_DOCKER_BASE_IMAGE MLSAM_DOCKER_CA_DIR MLSAM_DOCKER_PRUNE
DOCKER=${DOCKER:-docker}
IMAGE=${MLSAM_DOCKER_IMAGE:-mlsam-node:check}
REDIS_IMAGE=mlsam-check/redis:bookworm
CA_DIR=${MLSAM_DOCKER_CA_DIR:-/usr/local/share/ca-certificates}
SLICES=24
run_id=mlsam-check-$$
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
work=$(mktemp -d /tmp/mlsam-docker-check-XXXXXX)
t_start=$(date +%s)
t_step=$t_start
step_name=''

# Ends the step before (its time printed under its own output) and starts the next one.
step_done() {
  local now
  now=$(date +%s)
  [ -z "$step_name" ] || printf '   %s: %d s\n' "$step_name" "$((now - t_step))"
  t_step=$now
}
step() {
  step_done
  step_name=$1
  echo "== $1"
}
fail() {
  echo "docker:check FAILED: $*" >&2
  if "$DOCKER" inspect "$run_id-node" >/dev/null 2>&1; then
    echo "--- mlsam container log (tail) ---" >&2
    "$DOCKER" logs --tail 40 "$run_id-node" >&2 2>&1 || true
  fi
  exit 1
}
cleanup() {
  "$DOCKER" rm -f -v "$run_id-node" "$run_id-redis" >/dev/null 2>&1 || true
  "$DOCKER" network rm "$run_id" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# JSON field of stdin, e.g. `json d.status`.
json() { node -e 'let s="";process.stdin.on("data",(c)=>(s+=c)).on("end",()=>{const d=JSON.parse(s);const v=eval(process.argv[1]);console.log(typeof v==="object"?JSON.stringify(v):String(v))})' "$1"; }

echo "== docker:check ($("$DOCKER" version --format 'client {{.Client.Version}}, daemon {{.Server.Version}}' 2>/dev/null || echo 'no daemon'))"
"$DOCKER" info >/dev/null 2>&1 || fail "no Docker daemon answers (Debian: apt-get install docker.io; start it with: setsid dockerd >/tmp/dockerd.log 2>&1 &)"
[ -f dist/cli/main.js ] || fail "dist/ missing: run npm run build (npm run docker:check does)"

step "compose.yaml"
# The passwords compose.yaml requires, for these commands only.
compose_env=(env DASHBOARD_PASSWORD=check ORTHANC_PASSWORD=check)
checked=0
if command -v docker-compose >/dev/null 2>&1; then
  "${compose_env[@]}" docker-compose -f compose.yaml config -q || fail "docker-compose $(docker-compose version --short) rejects compose.yaml"
  "${compose_env[@]}" docker-compose -f compose.yaml --profile gpu config --services | sort | tr '\n' ' ' | grep 'mlsam-admin mlsam-listener mlsam-worker mlsam-worker-gpu orthanc redis' >/dev/null \
    || fail "docker-compose does not list every service"
  echo "docker-compose $(docker-compose version --short): valid"
  checked=1
fi
if "$DOCKER" compose version >/dev/null 2>&1; then
  "${compose_env[@]}" "$DOCKER" compose -f compose.yaml config -q || fail "docker compose v2 rejects compose.yaml"
  echo "docker compose $("$DOCKER" compose version --short): valid"
  checked=1
fi
[ "$checked" = 1 ] || echo "neither docker-compose nor docker compose installed: compose.yaml not checked"

step "base image"
base=${MLSAM_DOCKER_BASE_IMAGE:-mlsam-base/debian:bookworm}
if ! "$DOCKER" image inspect "$base" >/dev/null 2>&1; then
  [ -z "${MLSAM_DOCKER_BASE_IMAGE:-}" ] || fail "base image $base not found"
  echo "no $base: making it with docker/base-image.sh (debootstrap)"
  bash docker/base-image.sh "$base"
fi
echo "BASE_IMAGE=$base"

step "build $IMAGE (Dockerfile, target runtime)"
# The build context: what git tracks or would track under the paths the Dockerfile copies, plus
# the extra CA certificates under docker/ca-certificates/.
git ls-files -co --exclude-standard -z -- Dockerfile .dockerignore package.json package-lock.json .npmrc tsconfig.json src config models docker \
  | tar --null -T - -cf "$work/context.tar"
certs=()
if [ -d "$CA_DIR" ]; then
  while IFS= read -r -d '' f; do certs+=("$(basename "$f")"); done < <(find "$CA_DIR" -maxdepth 1 -name '*.crt' -print0)
fi
if [ ${#certs[@]} -gt 0 ]; then
  tar -rf "$work/context.tar" -C "$CA_DIR" --transform 's,^,docker/ca-certificates/,' "${certs[@]}"
  echo "extra CA certificates from $CA_DIR: ${certs[*]}"
fi
nice "$DOCKER" build --target runtime --build-arg "BASE_IMAGE=$base" ${NPM_REGISTRY:+--build-arg "NPM_REGISTRY=$NPM_REGISTRY"} \
  -t "$IMAGE" - <"$work/context.tar" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; fail "docker build"; }
echo "$IMAGE: $("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

step "Redis image ($REDIS_IMAGE: redis-server from Debian on the same base)"
printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*\nUSER redis\nCMD ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"]\n' "$base" \
  | nice "$DOCKER" build -t "$REDIS_IMAGE" - >"$work/redis-build.log" 2>&1 || { tail -20 "$work/redis-build.log" >&2; fail "Redis image"; }

step "start Redis and mlsam serve on network $run_id"
"$DOCKER" network create "$run_id" >/dev/null
"$DOCKER" run -d --name "$run_id-redis" --network "$run_id" --network-alias redis "$REDIS_IMAGE" >/dev/null
"$DOCKER" run -d --name "$run_id-node" --network "$run_id" \
  -p 127.0.0.1::11112 -p 127.0.0.1::8080 \
  -e MLSAM_REDIS__URL=redis://redis:6379 -e MLSAM_HTTP__HOST=0.0.0.0 -e "MLSAM_HTTP__PASSWORD=$password" \
  -e MLSAM_SERIES__QUIET_PERIOD_SECONDS=2 -e MLSAM_SERIES__ROUTING__MIN_SLICES=10 \
  "$IMAGE" serve >/dev/null
dicom_port=$("$DOCKER" port "$run_id-node" 11112/tcp | sed -n '1s/.*://p')
http_port=$("$DOCKER" port "$run_id-node" 8080/tcp | sed -n '1s/.*://p')
echo "DICOM 127.0.0.1:$dicom_port, HTTP 127.0.0.1:$http_port"
for _ in $(seq 1 120); do
  "$DOCKER" logs "$run_id-node" 2>&1 | grep '"msg":"admin listening"' >/dev/null && break
  [ "$("$DOCKER" inspect -f '{{.State.Running}}' "$run_id-node")" = true ] || fail "the container exited"
  sleep 0.5
done
node_log=$("$DOCKER" logs "$run_id-node" 2>&1)
grep '"msg":"admin listening"' >/dev/null <<<"$node_log" || fail "no 'admin listening' log line after 60 s"
grep '"msg":"inference worker started"' >/dev/null <<<"$node_log" || fail "no inference worker"

step "C-ECHO and probes"
"$DOCKER" exec "$run_id-node" node dist/cli/main.js echo --host 127.0.0.1 >/dev/null || fail "the image's health check command (C-ECHO inside the container)"
echo "health check command (C-ECHO inside the container): ok"
node dist/cli/main.js echo --host 127.0.0.1 --port "$dicom_port" --aet MLSAM >/dev/null || fail "mlsam echo from the host"
echo "mlsam echo from the host: ok"
if command -v echoscu >/dev/null 2>&1; then
  TCP_NODELAY=1 echoscu -aec MLSAM 127.0.0.1 "$dicom_port" || fail "DCMTK echoscu"
  echo "DCMTK echoscu: ok"
fi
auth=(-u "admin:$password")
curl -fsS "http://127.0.0.1:$http_port/healthz" >/dev/null || fail "/healthz"
[ "$(curl -fsS "http://127.0.0.1:$http_port/readyz" | json 'd.ok')" = true ] || fail "/readyz: $(curl -sS "http://127.0.0.1:$http_port/readyz")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/admin")" = 401 ] || fail "the dashboard answers without the password"
echo "/healthz, /readyz: ok; /admin: 401 without the password"

step "score a $SLICES-slice phantom through the container"
series_uid=$(node --input-type=module -e "
  const { writePhantomSeries } = await import('./dist/demo/phantom.js');
  const p = await writePhantomSeries({ dir: '$work/phantom', slices: $SLICES, size: 256 });
  console.log(p.seriesInstanceUid);")
node dist/cli/main.js send --host 127.0.0.1 --port "$dicom_port" --aet MLSAM "$work/phantom" >"$work/send.log" 2>&1 \
  || { cat "$work/send.log" >&2; fail "mlsam send"; }
status=''
for _ in $(seq 1 360); do
  detail=$(curl -fsS "${auth[@]}" "http://127.0.0.1:$http_port/api/series/$series_uid" 2>/dev/null || true)
  [ -n "$detail" ] && status=$(printf '%s' "$detail" | json 'd.status')
  case "$status" in scored | sent) break ;; failed | not-scored | ignored) fail "series $status: $(printf '%s' "$detail" | json 'd.reason')" ;; esac
  sleep 0.5
done
[ "$status" = scored ] || fail "series not scored after 180 s (status: ${status:-none})"
printf '%s' "$detail" | json '`score ${d.score.toFixed(3)} → ${d.category}, ${d.sliceCount} slices, ${d.result.outputs.length} result objects, provider ${d.result.provider}`'
[ "$(printf '%s' "$detail" | json 'd.sliceCount')" = "$SLICES" ] || fail "not every slice was scored"
sr_path=$(printf '%s' "$detail" | json 'd.result.outputs.find((o) => o.kind === "sr").path')
"$DOCKER" cp "$run_id-node:$sr_path" "$work/sr.dcm" || fail "no SR at $sr_path in the container"
if command -v dsrdump >/dev/null 2>&1; then
  dsrdump "$work/sr.dcm" >"$work/sr.txt" || fail "dsrdump cannot read the SR"
  grep 'NOT FOR DIAGNOSTIC USE' "$work/sr.txt" >/dev/null || fail "the SR does not say NOT FOR DIAGNOSTIC USE"
  echo "SR read back with dsrdump: ok"
fi
page=$(curl -fsS "${auth[@]}" "http://127.0.0.1:$http_port/admin/series/$series_uid")
grep -q 'id="chart-data"' <<<"$page" || fail "the series page has no chart"
echo "series page: ok"

step_done
if [ "${MLSAM_DOCKER_PRUNE:-0}" = 1 ]; then
  "$DOCKER" image prune -f --filter label=org.mlsam.stage >/dev/null && echo "build-stage images (label org.mlsam.stage) removed"
else
  stages=$("$DOCKER" images -q --filter dangling=true --filter label=org.mlsam.stage | wc -l)
  [ "$stages" = 0 ] || echo "kept $stages untagged build-stage image(s) (the layer cache; remove: docker image prune -f --filter label=org.mlsam.stage)"
fi
echo "docker:check passed in $(($(date +%s) - t_start)) s"
