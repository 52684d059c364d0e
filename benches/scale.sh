#!/usr/bin/env bash
# Scale run (not in CI): a SIZE_GB, ENTRIES-entry artifact tree, then end to
# end against a local docker-registry, each step beside its floor measured
# in the same run, with peak RSS (/usr/bin/time):
#   tree -> layer (append, uncompressed)  floor: tar | tee FILE | sha256sum + fsync
#   artifact image (append, gzip, 2 layers)
#   package (selected trees of the artifact -> one gzip layer on a base)
#                                         floor: pigz -dc of the selected layers | pigz -2 -p N
#                                         (gzip -dc | gzip -2 without pigz)
#   push of the packaged image            floor: curl POST + PUT -T of the same blobs
#   pull of it                            floor: curl GET of the same blobs
#
#   benches/scale.sh                          # 10 GB, 200,000 entries
#   SIZE_GB=1 ENTRIES=20000 benches/scale.sh  # the small check
#   WORK=/big/disk benches/scale.sh           # scratch dir (needs ~6x SIZE_GB)
# Everything under WORK is removed at the end (KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
SIZE_GB=${SIZE_GB:-10}
ENTRIES=${ENTRIES:-200000}
WORK=${WORK:-/tmp/ocipack-scale}
KEEP=${KEEP:-0}
JOBS=${JOBS:-4}
for t in docker-registry curl gzip python3 /usr/bin/time tar; do
    command -v "$t" >/dev/null || { echo "scale.sh: missing $t" >&2; exit 1; }
done
need_kb=$((SIZE_GB * 6 * 1024 * 1024))
avail_kb=$(df -Pk "$(dirname "$WORK")" | awk 'NR==2 {print $4}')
if [ "$avail_kb" -lt "$need_kb" ]; then
    echo "scale.sh: $((avail_kb / 1048576)) GiB free under $(dirname "$WORK"), need ~$((need_kb / 1048576)) GiB" >&2
    exit 1
fi

echo "== build (release)" >&2
cargo build --release --quiet
cargo build --release --quiet --bench package_path 2>/dev/null || true
OCIPACK=$repo/target/release/ocipack
PKG=$(cargo bench --no-run --bench package_path --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="package_path" and m.get("executable"):
        print(m["executable"])')

rm -rf "$WORK"
mkdir -p "$WORK"
REG_PID=
cleanup() {
    # (wait returns the killed registry's status: never let it stop the cleanup)
    if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
    [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
log=$WORK/times.tsv
: > "$log"

# One timed step: name, then the command. Records seconds and peak RSS.
timed() {
    local name=$1; shift
    local tf; tf=$(mktemp)
    /usr/bin/time -f '%e %M' -o "$tf" "$@" >/dev/null 2>"$WORK/last.err" || {
        echo "scale.sh: $name failed:" >&2; cat "$WORK/last.err" >&2; exit 1; }
    read -r secs kb < "$tf"; rm -f "$tf"
    printf '%s\t%s\t%s\n' "$name" "$secs" "$kb" >> "$log"
    printf '  %-44s %8.2f s  %6d MB peak RSS\n' "$name" "$secs" $((kb / 1024)) >&2
}

echo "== generating ${SIZE_GB} GB in ${ENTRIES} entries" >&2
python3 - "$WORK/tree" "$SIZE_GB" "$ENTRIES" <<'PY'
# Two top-level trees (a: many small files, b: fewer large ones), 5% of the
# entries directories and symlinks. File bodies are half random, half text
# (gzip gets ~2x, like a real payload of binaries and docs).
import os, random, sys
root, size_gb, entries = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
total = int(size_gb * 1e9)
rng = random.Random(42)
files = int(entries * 0.95)
small = int(files * 0.97)
small_size = 8192
big = files - small
big_size = max(small_size, (total - small * small_size) // max(1, big))
text = (b"the quick brown fox jumps over the lazy dog 0123456789\n" * 40000)
noise = os.urandom(1 << 22)
def body(n, i):
    out, pos = bytearray(), (i * 7919) % (1 << 21)
    while len(out) < n:
        k = min(1 << 20, n - len(out))
        half = k // 2
        out += noise[pos:pos + half] + text[:k - half]
    return bytes(out)
made = 0
dirs = 0
for i in range(files):
    sub = "a" if i < small else "b"
    d = os.path.join(root, sub, f"d{i // 200:05d}")
    if not os.path.isdir(d):
        os.makedirs(d); dirs += 1
    n = small_size if i < small else big_size
    with open(os.path.join(d, f"f{i:07d}"), "wb") as f:
        if n > (1 << 20):
            left = n
            while left > 0:
                k = min(left, 1 << 24)
                f.write(body(k, i)); left -= k
        else:
            f.write(body(n, i))
    made += 1
links = entries - files - dirs
for j in range(max(0, links)):
    d = os.path.join(root, "a", "links")
    os.makedirs(d, exist_ok=True)
    os.symlink(f"../d{(j % max(1, small // 200)):05d}", os.path.join(d, f"l{j:06d}"))
PY
entries=$(find "$WORK/tree" -mindepth 1 | wc -l)
bytes=$(du -sb "$WORK/tree" | cut -f1)
echo "tree: $entries entries, $bytes bytes" >&2
tar -C "$WORK/tree" -cf - . | cat >/dev/null   # warm the page cache

base=$repo/fixtures/base
cp -a "$base" "$WORK/img"

echo "== layer from the tree" >&2
timed "floor: tar | tee FILE | sha256sum, fsync" sh -c \
    "tar -C '$WORK/tree' -cf - . | tee '$WORK/floor.tar' | sha256sum && sync -d '$WORK/floor.tar'"
rm -f "$WORK/floor.tar"
timed "ocipack append (uncompressed)" "$OCIPACK" append --base "oci:$WORK/img:base-amd64" \
    --dir "$WORK/tree:/payload" --out "oci:$WORK/img:plain" --no-cache --compression none
echo "== artifact image (gzip, 2 layers)" >&2
timed "ocipack append (gzip, artifact)" "$OCIPACK" append --base "oci:$WORK/img:base-amd64" \
    --dir "$WORK/tree/a:/opt/a" --dir "$WORK/tree/b:/opt/b" --out "oci:$WORK/img:art" --no-cache

# Blobs of a tagged image: every layer, then the config.
blobs_of() {
    python3 - "$WORK/img" "$1" <<'PY'
import json, os, sys
lay, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(os.path.join(lay, "index.json")))
m = next(d for d in idx["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
man = json.load(open(os.path.join(lay, "blobs", *m["digest"].split(":"))))
for l in man["layers"]: print(l["digest"].split(":")[1])
print(man["config"]["digest"].split(":")[1])
PY
}
blobs_of art | head -n -1 | tail -n 2 > "$WORK/art-layers.txt"
echo "== package (selected trees -> one gzip layer)" >&2
threads=$(nproc)
# pigz when installed; else gzip (decompressing and compressing on one core
# each: the pipeline still keeps two cores busy).
if command -v pigz >/dev/null; then zdec="pigz -dc"; zenc="pigz -2 -p$threads"; else zdec="gzip -dc"; zenc="gzip -2"; fi
timed "floor: $zdec selected | $zenc" sh -c \
    "cd '$WORK/img/blobs/sha256' && cat \$(cat '$WORK/art-layers.txt') | $zdec | $zenc | sha256sum"
timed "ocipack package path (gzip)" "$PKG" --from "oci:$WORK/img:art" \
    --base "oci:$WORK/img:base-amd64" --out "oci:$WORK/img:pkg" \
    --select /opt/a --select /opt/b:/usr/local/b

echo "== push and pull" >&2
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
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
export REG=127.0.0.1:$PORT BLOBS=$WORK/img/blobs/sha256 JOBS
blobs_of pkg > "$WORK/pkg-blobs.txt"
cat > "$WORK/curl-push.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
one() {
    loc=$(curl -fsS -X POST -D - -o /dev/null -H 'Content-Length: 0' "http://$REG/v2/floor/img/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
    case $loc in http*) ;; *) loc="http://$REG$loc" ;; esac
    case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$BLOBS/$1" "$loc${sep}digest=sha256:$1"
}
export -f one
xargs -P "$JOBS" -I{} bash -c 'one {}' < "$1"
SH
chmod +x "$WORK/curl-push.sh"
timed "floor: curl POST+PUT -T (push)" "$WORK/curl-push.sh" "$WORK/pkg-blobs.txt"
rm -rf "$STORE/docker"
timed "ocipack push" "$OCIPACK" push "oci:$WORK/img:pkg" "docker://$REG/scale/img:v1" -j "$JOBS"
mkdir -p "$WORK/get"
timed "floor: curl GET (pull)" sh -c \
    "xargs -P $JOBS -I{} curl -fsS -o '$WORK/get/{}' 'http://$REG/v2/scale/img/blobs/sha256:{}' < '$WORK/pkg-blobs.txt'"
rm -rf "$WORK/get"
timed "ocipack pull" "$OCIPACK" pull "docker://$REG/scale/img:v1" "oci:$WORK/pulled:v1" -j "$JOBS"

echo
echo "Scale run: $entries entries, $bytes bytes, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$log" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
t = {n: float(s) for n, s, _ in rows}
rss = {n: int(k) // 1024 for n, _, k in rows}
pairs = {
    "ocipack append (uncompressed)": "floor: tar | tee FILE | sha256sum, fsync",
    "ocipack package path (gzip)": next(n for n in t if n.startswith("floor: pigz") or n.startswith("floor: gzip")),
    "ocipack push": "floor: curl POST+PUT -T (push)",
    "ocipack pull": "floor: curl GET (pull)",
}
print("| step | seconds | peak RSS MB | floor s | ratio to floor |")
print("|---|---:|---:|---:|---:|")
for n, _, _ in rows:
    if n.startswith("floor"): continue
    f = pairs.get(n)
    fl = f"{t[f]:.1f}" if f else "-"
    ra = f"{t[n]/t[f]:.2f}x" if f else "-"
    print(f"| {n} | {t[n]:.1f} | {rss[n]} | {fl} | {ra} |")
PY
