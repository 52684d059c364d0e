#!/usr/bin/env bash
# Push benchmark: `ocipack push` against `skopeo copy` into a local
# docker-registry (distribution 2.8), once into an empty registry ("fresh")
# and once more when every blob is already there ("again").
#
#   benches/push.sh                 # 2 GiB image in 4 layers, 3 runs
#   SIZE_MIB=4096 LAYERS=8 RUNS=5 benches/push.sh
#   CHUNK=16MiB benches/push.sh     # ocipack upload chunk size (default 4MiB)
#
# The image is random (incompressible) data written as an OCI layout by a
# few lines of python; the registry stores on the same disk. Results are
# printed as markdown tables (copy them into BENCHMARKS.md).
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-2048}
LAYERS=${LAYERS:-4}
RUNS=${RUNS:-3}
CHUNK=${CHUNK:-4MiB}

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install $2" >&2; exit 1; }; }
need docker-registry docker-registry
need skopeo skopeo
need hyperfine hyperfine
need python3 python3
need curl curl

cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/ocipack

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ocipack-push-bench.XXXXXX")
REG_PID=
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== writing a ${SIZE_MIB} MiB image in ${LAYERS} layers" >&2
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

SRC="oci:$WORK/layout:bench"
DST="docker://127.0.0.1:$PORT/bench/img:v1"
OCIPACK="$BIN push $SRC $DST --chunk-size $CHUNK"
SKOPEO="skopeo copy --quiet --dest-tls-verify=false $SRC $DST"

echo "== fresh push (registry storage emptied before each run)" >&2
hyperfine --runs "$RUNS" --prepare "rm -rf $STORE/docker" \
    --export-markdown "$WORK/fresh.md" \
    -n "ocipack push (fresh, chunk $CHUNK)" "$OCIPACK" \
    -n "skopeo copy (fresh)" "$SKOPEO"

echo "== push again (every blob already there)" >&2
$OCIPACK >/dev/null
hyperfine --warmup 1 --runs 10 --export-markdown "$WORK/again.md" \
    -n "ocipack push (again)" "$OCIPACK" \
    -n "skopeo copy (again)" "$SKOPEO"

echo
echo "Image: ${SIZE_MIB} MiB in ${LAYERS} layers (random data), $(nproc) cores, docker-registry $(docker-registry --version | awk '{print $3}'), skopeo $(skopeo --version | awk '{print $3}')"
echo
cat "$WORK/fresh.md"
echo
cat "$WORK/again.md"
