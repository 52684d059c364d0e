#!/usr/bin/env bash
# Push and pull benchmark against a local docker-registry (distribution),
# each figure beside its floor measured in the same run:
#   push floor: a monolithic upload of the same blobs with curl (POST, then
#               PUT -T FILE ?digest=), up to -j blobs at once, plus the manifest;
#   pull floor: a plain GET of the same blobs with curl, -j at once.
# Peers: skopeo copy (push and pull).
#
#   benches/push.sh                           # 512 MiB in 1 layer, 5 runs
#   SIZE_MIB=2048 LAYERS=4 RUNS=3 benches/push.sh
#   CHUNK=16MiB benches/push.sh               # ocipack --chunk-size (default: stream)
#   PULL=0 benches/push.sh                    # push only
#
# Runs are interleaved (run 1 of each contender, then run 2, ...) so a noisy
# neighbour hurts all alike; registry storage is emptied before every push.
# Prints each run, then median [min-max] per contender and the median ratio
# to the floor. The image is random (incompressible) data.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-512}
LAYERS=${LAYERS:-1}
RUNS=${RUNS:-5}
CHUNK=${CHUNK:-}
PULL=${PULL:-1}
JOBS=${JOBS:-4}

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install $2" >&2; exit 1; }; }
need docker-registry docker-registry
need skopeo skopeo
need python3 python3
need curl curl

cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/ocipack

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ocipack-push-bench.XXXXXX")
REG_PID=
cleanup() {
    # (wait returns the killed registry's status: never let it stop the cleanup)
    if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== writing a ${SIZE_MIB} MiB image in ${LAYERS} layer(s)" >&2
python3 - "$WORK/layout" "$SIZE_MIB" "$LAYERS" <<'PY'
import hashlib, json, os, sys
root, size_mib, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(data_iter):
    h, n, tmp = hashlib.sha256(), 0, os.path.join(root, "tmp")
    with open(tmp, "wb") as f:
        for chunk in data_iter:
            h.update(chunk); f.write(chunk); n += len(chunk)
    d = h.hexdigest(); os.rename(tmp, os.path.join(blobs, d))
    return "sha256:" + d, n
def rand(mib):
    for _ in range(mib):
        yield os.urandom(1 << 20)
per = max(1, size_mib // layers)
descs = []
for _ in range(layers):
    d, n = put(rand(per))
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in descs]}},
                 sort_keys=True, separators=(",", ":")).encode()
cd, cn = put([cfg])
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                  "layers": descs}, sort_keys=True, separators=(",", ":")).encode()
md, mn = put([man])
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
              "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)
with open(os.path.join(root, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(root, "..", "blobs.txt"), "w") as f:
    for x in descs + [{"digest": cd}]:
        f.write(x["digest"].split(":")[1] + "\n")
with open(os.path.join(root, "..", "manifest.txt"), "w") as f:
    f.write(md.split(":")[1] + "\n")
PY

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STORE=$WORK/storage
cat > "$WORK/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STORE
http:
  addr: 127.0.0.1:$PORT
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break
    sleep 0.1
done

REG=127.0.0.1:$PORT
SRC="oci:$WORK/layout:bench"
DST="docker://$REG/bench/img:v1"
BLOBS=$WORK/layout/blobs/sha256
export REG BLOBS

# The floor: what curl needs to move the same bytes (one upload per blob,
# JOBS at once, then the manifest).
cat > "$WORK/curl-push.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
one() {
    loc=$(curl -fsS -X POST -D - -o /dev/null -H 'Content-Length: 0' "http://$REG/v2/bench/img/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
    case $loc in http*) ;; *) loc="http://$REG$loc" ;; esac
    case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        -T "$BLOBS/$1" "$loc${sep}digest=sha256:$1"
}
export -f one
xargs -P "$JOBS" -I{} bash -c 'one {}' < "$1/blobs.txt"
m=$(cat "$1/manifest.txt")
curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$BLOBS/$m" "http://$REG/v2/bench/img/manifests/v1"
SH
cat > "$WORK/curl-pull.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
mkdir -p "$2"
xargs -P "$JOBS" -I{} curl -fsS -o "$2/{}" "http://$REG/v2/bench/img/blobs/sha256:{}" < "$1/blobs.txt"
SH
chmod +x "$WORK/curl-push.sh" "$WORK/curl-pull.sh"
export JOBS

CHUNK_ARG=
[ -n "$CHUNK" ] && CHUNK_ARG="--chunk-size $CHUNK"
declare -a NAMES CMDS PREPS
add() { NAMES+=("$1"); PREPS+=("$2"); CMDS+=("$3"); }
FRESH="rm -rf $STORE/docker"
add "push floor: curl POST+PUT -T" "$FRESH" "$WORK/curl-push.sh $WORK"
add "ocipack push" "$FRESH" "$BIN push $SRC $DST -j $JOBS $CHUNK_ARG"
add "skopeo copy (push)" "$FRESH" "skopeo copy --quiet --dest-tls-verify=false $SRC $DST"
if [ "$PULL" = 1 ]; then
    PULLED=$WORK/pulled
    add "pull floor: curl GET" "rm -rf $PULLED" "$WORK/curl-pull.sh $WORK $PULLED"
    add "ocipack pull" "rm -rf $PULLED" "$BIN copy $DST oci:$PULLED:v1 -j $JOBS"
    add "skopeo copy (pull)" "rm -rf $PULLED" "skopeo copy --quiet --src-tls-verify=false $DST oci:$PULLED:v1"
fi

TIMES=$WORK/times.tsv
: > "$TIMES"
for run in $(seq "$RUNS"); do
    for i in "${!NAMES[@]}"; do
        # Pull contenders need the image in the registry.
        case ${NAMES[$i]} in
            *pull*) curl -fs -o /dev/null "http://$REG/v2/bench/img/manifests/v1" ||
                        "$BIN" push "$SRC" "$DST" >/dev/null ;;
        esac
        bash -c "${PREPS[$i]}"
        sync
        t0=$(date +%s.%N)
        bash -c "${CMDS[$i]}" >/dev/null
        t1=$(date +%s.%N)
        secs=$(python3 -c "print(f'{$t1-$t0:.3f}')")
        printf '%s\t%s\n' "${NAMES[$i]}" "$secs" >> "$TIMES"
        printf 'run %d  %-30s %7.3f s\n' "$run" "${NAMES[$i]}" "$secs" >&2
    done
done

echo
echo "Image: ${SIZE_MIB} MiB in ${LAYERS} layer(s) (random data), ${RUNS} interleaved runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), docker-registry $(docker-registry --version | awk '{print $3}'), skopeo $(skopeo --version | awk '{print $3}'), ocipack chunk ${CHUNK:-stream}"
echo
python3 - "$TIMES" "$SIZE_MIB" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
mib = float(sys.argv[2])
order, times = [], {}
for n, s in rows:
    if n not in times: order.append(n); times[n] = []
    times[n].append(float(s))
med = {n: statistics.median(v) for n, v in times.items()}
def floor_of(n):
    return "push floor: curl POST+PUT -T" if ("push" in n and "floor" not in n) else \
           "pull floor: curl GET" if ("pull" in n and "floor" not in n) else None
print("| contender | median s | min-max s | MiB/s | ratio to floor |")
print("|---|---:|---:|---:|---:|")
for n in order:
    f = floor_of(n)
    ratio = f"{med[n]/med[f]:.2f}x" if f in med else "(floor)"
    print(f"| {n} | {med[n]:.2f} | {min(times[n]):.2f}-{max(times[n]):.2f} | {mib/med[n]:.0f} | {ratio} |")
PY
