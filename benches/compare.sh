#!/usr/bin/env bash
# Layer-building benchmark: ocipack vs umoci, pigz, zstd on the same data.
#
#   benches/compare.sh              # everything (about 15 minutes on 2 cores)
#   RUNS=5 benches/compare.sh       # more runs per contender (default 3)
#   RSS=0 benches/compare.sh        # skip the multi-GiB memory test
#   WORK=/path benches/compare.sh   # scratch dir (default /tmp/ocipack-bench)
#
# Contenders run interleaved (run 1 of each, then run 2 of each, ...) so a
# noisy neighbour hurts all of them alike; the page cache is warmed first.
# Prints per-run times, medians, ratios, output sizes and peak RSS.
# Needs: umoci, pigz, zstd, GNU tar, /usr/bin/time, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
RUNS=${RUNS:-3}
RSS=${RSS:-1}
WORK=${WORK:-/tmp/ocipack-bench}
for t in umoci pigz zstd tar python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "compare.sh: missing $t (apt-get install umoci pigz zstd time python3)" >&2; exit 1; }
done

echo "== build (release)"
cargo build --release --quiet
OCIPACK=$repo/target/release/ocipack
PKG=$(cargo bench --no-run --bench package_path --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="package_path" and m.get("executable"):
        print(m["executable"])')

mkdir -p "$WORK"
tree=$WORK/tree
if [ ! -d "$tree" ]; then
  echo "== generating the tree"
  benches/gen-tree.sh "$tree"
fi
entries=$(find "$tree" -mindepth 1 | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
echo "tree: $entries entries, $bytes bytes"

# The 3-layer artifact image for the package-style path, written by umoci.
art=$WORK/art
if [ ! -d "$art" ]; then
  echo "== building the 3-layer artifact image with umoci"
  umoci init --layout "$art"
  umoci new --image "$art:src"
  umoci insert --image "$art:src" "$tree/share" /bench/share >/dev/null
  umoci insert --image "$art:src" "$tree/lib" /bench/lib >/dev/null
  umoci insert --image "$art:src" "$tree/include" /bench/include >/dev/null
fi

base=$repo/fixtures/base
fresh_base() { rm -rf "$1"; cp -a "$base" "$1"; }
log=$WORK/times.tsv
: > "$log"
cache=$WORK/cache

# One timed run: name, then the command. Records seconds and peak RSS.
timed() {
  local name=$1; shift
  local tf; tf=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >/dev/null 2>"$WORK/last.err" || {
    echo "compare.sh: $name failed:" >&2; cat "$WORK/last.err" >&2; exit 1; }
  read -r secs kb < "$tf"; rm -f "$tf"
  printf '%s\t%s\t%s\n' "$name" "$secs" "$kb" >> "$log"
  printf '  %-34s %7.2f s  %7d MB\n' "$name" "$secs" $((kb / 1024))
}

export WORK art
peer_package() {
  local b=$WORK/peer
  rm -rf "$b" "$WORK/peer-art"
  umoci unpack --image "$art:src" "$WORK/peer-art" >/dev/null
  umoci unpack --image "$WORK/o-peer:base-amd64" "$b" >/dev/null
  mkdir -p "$b/rootfs/bench" "$b/rootfs/usr/local"
  cp -a "$WORK/peer-art/rootfs/bench/share" "$WORK/peer-art/rootfs/bench/include" "$b/rootfs/bench/"
  cp -a "$WORK/peer-art/rootfs/bench/lib" "$b/rootfs/usr/local/bench-lib"
  umoci repack --image "$WORK/o-peer:new" "$b" >/dev/null
  rm -rf "$b" "$WORK/peer-art"
}
export -f peer_package

echo "== warming the page cache"
tar -C "$tree" -cf - . | cat >/dev/null

echo "== $RUNS runs each"
for run in $(seq 1 "$RUNS"); do
  echo "run $run"
  fresh_base "$WORK/o-gzip"
  timed "ocipack append gzip" "$OCIPACK" append --base "oci:$WORK/o-gzip:base-amd64" \
    --dir "$tree:/bench" --out "oci:$WORK/o-gzip:new" --no-cache
  fresh_base "$WORK/o-zstd"
  timed "ocipack append zstd" "$OCIPACK" append --base "oci:$WORK/o-zstd:base-amd64" \
    --dir "$tree:/bench" --out "oci:$WORK/o-zstd:new" --no-cache --compression zstd
  fresh_base "$WORK/o-umoci"
  timed "umoci insert" umoci insert --image "$WORK/o-umoci:base-amd64" "$tree" /bench
  timed "tar | pigz -p2 | sha256sum" sh -c "tar -C '$tree' -cf - . | pigz -p2 | sha256sum"
  timed "tar | zstd -3 -T2 | sha256sum" sh -c "tar -C '$tree' -cf - . | zstd -q -3 -T2 | sha256sum"
  fresh_base "$WORK/o-pkg"
  timed "ocipack package path (gzip)" "$PKG" --from "oci:$art:src" --base "oci:$WORK/o-pkg:base-amd64" \
    --out "oci:$WORK/o-pkg:new" --select /bench/share --select /bench/lib:/usr/local/bench-lib \
    --select /bench/include
  fresh_base "$WORK/o-peer"
  timed "umoci unpack + cp + umoci repack" bash -c peer_package
done

echo "== reruns with unchanged inputs (cache)"
rm -rf "$cache"
fresh_base "$WORK/o-cache"
OCIPACK_CACHE_DIR=$cache "$OCIPACK" append --base "oci:$WORK/o-cache:base-amd64" \
  --dir "$tree:/bench" --out "oci:$WORK/o-cache:new" >/dev/null
export OCIPACK_CACHE_DIR=$cache
timed "ocipack append rerun (cached)" "$OCIPACK" append --base "oci:$WORK/o-cache:base-amd64" \
  --dir "$tree:/bench" --out "oci:$WORK/o-cache:new"
unset OCIPACK_CACHE_DIR
"$PKG" --from "oci:$art:src" --base "oci:$WORK/o-cache:base-amd64" --out "oci:$WORK/o-cache:pkg" \
  --select /bench/share --select /bench/lib:/usr/local/bench-lib --select /bench/include --cache "$cache" >/dev/null 2>&1
timed "package path rerun (cached)" "$PKG" --from "oci:$art:src" --base "oci:$WORK/o-cache:base-amd64" \
  --out "oci:$WORK/o-cache:pkg" --select /bench/share --select /bench/lib:/usr/local/bench-lib \
  --select /bench/include --cache "$cache"

if [ "$RSS" = 1 ]; then
  echo "== peak memory on a multi-GiB layer"
  big=$WORK/big
  [ -d "$big" ] || benches/gen-tree.sh "$big" 4
  echo "big tree: $(find "$big" -mindepth 1 | wc -l) entries, $(du -sb "$big" | cut -f1) bytes"
  fresh_base "$WORK/o-big"
  timed "ocipack append gzip (big tree)" "$OCIPACK" append --base "oci:$WORK/o-big:base-amd64" \
    --dir "$big:/bench" --out "oci:$WORK/o-big:new" --no-cache --json
  rm -rf "$WORK/o-big"
fi

# Output sizes: the layer each tool added.
layer_size() { # layout tag -> size of the last layer blob
  python3 - "$1" "$2" <<'EOF'
import json, sys, os
lay, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(os.path.join(lay, "index.json")))
m = next(d for d in idx["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
man = json.load(open(os.path.join(lay, "blobs", *m["digest"].split(":"))))
print(man["layers"][-1]["size"])
EOF
}
echo "== sizes"
sizes=$WORK/sizes.tsv
{
  printf 'ocipack gzip\t%s\n' "$(layer_size "$WORK/o-gzip" new)"
  printf 'ocipack zstd\t%s\n' "$(layer_size "$WORK/o-zstd" new)"
  printf 'umoci insert\t%s\n' "$(layer_size "$WORK/o-umoci" base-amd64)"
  printf 'pigz -p2\t%s\n' "$(tar -C "$tree" -cf - . | pigz -p2 | wc -c)"
  printf 'zstd -3 -T2\t%s\n' "$(tar -C "$tree" -cf - . | zstd -q -3 -T2 | wc -c)"
  printf 'ocipack package path\t%s\n' "$(layer_size "$WORK/o-pkg" new)"
  printf 'umoci repack\t%s\n' "$(layer_size "$WORK/o-peer" new)"
} | tee "$sizes"

echo "== summary (median of $RUNS runs)"
python3 - "$log" "$sizes" <<'EOF'
import sys, statistics, collections
runs = collections.defaultdict(list); rss = collections.defaultdict(int)
for line in open(sys.argv[1]):
    n, s, kb = line.rstrip("\n").split("\t")
    runs[n].append(float(s)); rss[n] = max(rss[n], int(kb))
med = {n: statistics.median(v) for n, v in runs.items()}
for n, v in runs.items():
    print(f"{n:36s} median {med[n]:7.2f} s  runs {', '.join(f'{x:.2f}' for x in v)}  peak RSS {rss[n]//1024} MB")
size = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[2]))
def ratio(a, b):
    if a in med and b in med:
        print(f"{a} vs {b}: {med[b]/med[a]:.2f}x faster")
print()
ratio("ocipack append gzip", "umoci insert")
print(f"  gzip size ocipack/umoci: {int(size['ocipack gzip'])/int(size['umoci insert']):.3f}")
ratio("ocipack append gzip", "tar | pigz -p2 | sha256sum")
ratio("ocipack append zstd", "tar | zstd -3 -T2 | sha256sum")
print(f"  zstd size ocipack/zstd CLI: {int(size['ocipack zstd'])/int(size['zstd -3 -T2']):.3f}")
ratio("ocipack package path (gzip)", "umoci unpack + cp + umoci repack")
print(f"  package size ocipack/umoci repack: {int(size['ocipack package path'])/int(size['umoci repack']):.3f}")
EOF
