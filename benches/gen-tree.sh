#!/usr/bin/env bash
# Generates a realistic rootfs-like tree for the layer benchmarks:
#   >= 1 GiB and >= 50,000 entries; many small files (docs, headers,
#   locales), large binaries (shared libraries), symlinks, hard links.
# Content is copied from this machine's /usr (real ELF and text data, so
# compression ratios and speeds are realistic), plus generated symlinks and
# hard links. Prints entry count and size.
#
#   benches/gen-tree.sh OUT_DIR [COPIES]
# COPIES (default 1) repeats the tree, for the multi-GiB memory test.
set -euo pipefail
out=${1:?usage: gen-tree.sh OUT_DIR [COPIES]}
copies=${2:-1}
[ -e "$out" ] && { echo "gen-tree: $out exists; remove it first" >&2; exit 1; }
mkdir -p "$out"

one() {
  local d=$1
  mkdir -p "$d/share" "$d/lib" "$d/include"
  # Small files: /usr/share (docs, locales, man pages, icons, ...).
  cp -a /usr/share/. "$d/share/"
  # Large binaries and their symlinks.
  cp -a /usr/lib/x86_64-linux-gnu/. "$d/lib/"
  cp -a /usr/include/. "$d/include/"
  # Hard links (500) and extra symlinks (2,000), deterministic picks.
  mkdir -p "$d/links/hard" "$d/links/sym"
  find "$d/include" -type f -name '*.h' | LC_ALL=C sort | awk 'NR<=500' | nl -ba |
    while read -r n f; do ln "$f" "$d/links/hard/h$n.h"; done
  find "$d/share/doc" -type f | LC_ALL=C sort | awk 'NR<=2000' | nl -ba |
    while read -r n f; do ln -s "../../${f#"$d"/}" "$d/links/sym/s$n"; done
}

for i in $(seq 1 "$copies"); do
  if [ "$copies" = 1 ]; then one "$out"; else one "$out/copy$i"; fi
done

entries=$(find "$out" -mindepth 1 | wc -l)
bytes=$(du -sb "$out" | cut -f1)
echo "gen-tree: $out: $entries entries, $bytes bytes ($((bytes / 1048576)) MiB)"
if [ "$entries" -lt 50000 ] || [ "$bytes" -lt $((1 << 30)) ]; then
  echo "gen-tree: warning: below the 1 GiB / 50,000 entries target on this machine" >&2
fi
