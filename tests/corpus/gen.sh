#!/usr/bin/env bash
# Builds the test corpus: images written by other tools (umoci, buildah,
# skopeo, GNU tar, bsdtar, Python's tarfile), each into $OUT/NAME (an OCI
# layout tagged `t`) or $OUT/NAME.tar (an oci-archive tagged `t`).
# Run by tests/corpus.rs at test time; nothing it makes is committed.
#
# usage: gen.sh OUT CASE...
set -euo pipefail
OUT=$(realpath "$1")
shift
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SOURCE_DATE_EPOCH=1700000000

mkimage() { python3 "$HERE/mkimage.py" "$@"; }

# A small tree with what real root filesystems hold: nested dirs, an
# executable, a symlink, a hard link across directories, an empty file,
# odd modes and owners, an xattr, a long name.
payload() {
  local d=$1
  mkdir -p "$d/etc/app" "$d/usr/bin" "$d/usr/lib/deep/er" "$d/var/empty" "$d/opt/tool"
  printf 'hello\n' >"$d/etc/app/conf"
  printf '#!/bin/sh\necho hi\n' >"$d/usr/bin/hi"
  chmod 0755 "$d/usr/bin/hi"
  ln -s ../lib/deep/er/lib.so "$d/usr/bin/lib-link"
  head -c 70000 /dev/zero | tr '\0' 'x' >"$d/usr/lib/deep/er/lib.so"
  ln "$d/usr/lib/deep/er/lib.so" "$d/opt/tool/lib-hardlink.so"
  : >"$d/var/empty/.keep"
  chmod 0700 "$d/var/empty"
  chmod 4755 "$d/usr/bin/hi"
  chown 1001:1002 "$d/opt/tool"
  setfattr -n user.corpus -v yes "$d/etc/app/conf" 2>/dev/null || true
  local long
  long="$d/opt/$(printf 'n%.0s' $(seq 1 120))/$(printf 'm%.0s' $(seq 1 150))"
  mkdir -p "$(dirname "$long")"
  printf 'long\n' >"$long"
  find "$d" -exec touch -h -d @1700000000 {} +
}

# Python's tarfile, writing the names other writers use: `/` and `./`
# root entries, absolute names, `a/../b`, hard links named absolutely.
case_py_names() {
  python3 - "$WORK/names.tar" <<'EOF'
import io, sys, tarfile
def add(t, name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, uid=0, gid=0):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.uid, i.gid, i.mtime, i.linkname = kind, mode, uid, gid, 1700000000, link
    i.size = len(data)
    t.addfile(i, io.BytesIO(data) if data else None)
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "/", tarfile.DIRTYPE, mode=0o755)
    add(t, "./", tarfile.DIRTYPE, mode=0o755)
    add(t, "/etc", tarfile.DIRTYPE, mode=0o755)
    add(t, "/etc/hostname", data=b"corpus\n")
    add(t, "./etc/hosts", data=b"127.0.0.1 localhost\n", uid=7, gid=8)
    add(t, "usr/../etc/motd", data=b"welcome\n")
    add(t, "/etc/hostname.link", tarfile.LNKTYPE, link="/etc/hostname")
    add(t, "./usr/bin/", tarfile.DIRTYPE, mode=0o711)
    add(t, "//usr//bin//tool", data=b"\x7fELF", mode=0o755)
    # A link header carrying its target's mode, as real writers do: where
    # they differ, containerd chmods the shared inode to the link's mode
    # while umoci (and ocipack) keep the target's (py-layers has one).
    add(t, "/usr/bin/tool2", tarfile.LNKTYPE, link="./usr/lib/../bin/tool", mode=0o755)
    add(t, "/bin", tarfile.SYMTYPE, link="usr/bin")
EOF
  mkimage "$OUT/py-names" t "$WORK/names.tar"
}

# `..` above the root: refused by ocipack (umoci and containerd clamp it).
case_py_escape() {
  python3 - "$WORK/escape.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT) as t:
    i = tarfile.TarInfo("etc/../../escaped")
    i.size = 4
    t.addfile(i, io.BytesIO(b"evil"))
EOF
  mkimage "$OUT/py-escape" t "$WORK/escape.tar"
}

# umoci: `insert` at `/` (a `/` entry first, as issue 10 hit), at a
# subpath, and `repack` after deleting and replacing files (whiteouts).
case_umoci() {
  local L=$OUT/umoci
  payload "$WORK/u"
  umoci init --layout "$L"
  umoci new --image "$L:root"
  umoci insert --image "$L:root" "$WORK/u" /
  mkdir -p "$WORK/u2/bin"
  printf 'sub\n' >"$WORK/u2/bin/subtool"
  umoci new --image "$L:sub"
  umoci insert --image "$L:sub" "$WORK/u" /
  umoci insert --image "$L:sub" "$WORK/u2" /opt/sub
  umoci unpack --image "$L:root" "$WORK/ub" >/dev/null
  local r=$WORK/ub/rootfs
  rm -rf "$r/etc/app" "$r/usr/bin/hi"
  rm -rf "$r/var/empty" && mkdir "$r/var/empty" && printf 'new\n' >"$r/var/empty/new"
  printf 'added\n' >"$r/etc/added"
  umoci repack --image "$L:repack" "$WORK/ub"
}

# buildah (vfs storage, as root): `from scratch`, `copy`, `commit`, then a
# second commit after deleting through `mount` (buildah's whiteouts),
# pushed to an OCI layout.
case_buildah() {
  local b=(buildah --root "$WORK/b/root" --runroot "$WORK/b/run" --storage-driver vfs)
  payload "$WORK/bp"
  local c
  c=$("${b[@]}" from scratch)
  "${b[@]}" copy "$c" "$WORK/bp" / >/dev/null
  "${b[@]}" commit -q "$c" corpus-one >/dev/null
  c=$("${b[@]}" from corpus-one)
  local m
  m=$("${b[@]}" mount "$c")
  rm -rf "$m/etc/app" "$m/usr/bin/lib-link"
  rm -rf "$m/var/empty" && mkdir "$m/var/empty" && printf 'new\n' >"$m/var/empty/new"
  "${b[@]}" umount "$c" >/dev/null
  "${b[@]}" commit -q "$c" corpus-two >/dev/null
  "${b[@]}" push -q corpus-one "oci:$OUT/buildah:one"
  "${b[@]}" push -q corpus-two "oci:$OUT/buildah:two"
  "${b[@]}" rm -a >/dev/null
  "${b[@]}" rmi -a -f >/dev/null || true
}

# skopeo copies of the umoci image: zstd, uncompressed, oci-archive.
case_skopeo() {
  [ -d "$OUT/umoci" ] || case_umoci
  skopeo copy -q "oci:$OUT/umoci:repack" "oci:$OUT/skopeo-zstd:t" \
    --dest-compress --dest-compress-format zstd
  skopeo copy -q "oci:$OUT/umoci:repack" "oci:$OUT/skopeo-plain:t" --dest-decompress
  skopeo copy -q "oci:$OUT/umoci:repack" "oci-archive:$OUT/skopeo-archive.tar:t"
  # Docker schema2 media types in an OCI layout (skopeo writes them but
  # cannot read them back from `oci:`).
  skopeo copy -q --format v2s2 "oci:$OUT/umoci:repack" "oci:$OUT/skopeo-v2s2:t"
}

# GNU tar in each format, with `./` prefixes (tar -C DIR .), long names,
# hard links across directories and xattrs (pax); ustar cannot hold the
# 270-byte name, so it gets the tree without it.
case_gnutar() {
  payload "$WORK/g"
  tar --format=gnu -C "$WORK/g" -cf "$WORK/gnu.tar" .
  tar --format=posix --xattrs -C "$WORK/g" -cf "$WORK/posix.tar" .
  cp -a "$WORK/g" "$WORK/gu" && rm -rf "$WORK/gu/opt/nnn"*
  tar --format=ustar -C "$WORK/gu" -cf "$WORK/ustar.tar" .
  mkimage "$OUT/gnutar" gnu "$WORK/gnu.tar"
  mkimage "$OUT/gnutar" posix "$WORK/posix.tar"
  mkimage "$OUT/gnutar" ustar --compress none "$WORK/ustar.tar"
  # The same layers with Docker schema2 media types (umoci reads only OCI
  # media types: the OCI images above are their twins).
  mkimage "$OUT/gnutar-docker" gnu --docker "$WORK/gnu.tar"
  mkimage "$OUT/gnutar-docker" posix --docker --compress none "$WORK/posix.tar"
}

# Sparse files: GNU tar's old GNU format (typeflag S) and PAX 1.0.
case_sparse() {
  mkdir -p "$WORK/s/d"
  truncate -s 3M "$WORK/s/d/holes"
  printf 'middle' | dd of="$WORK/s/d/holes" bs=1 seek=1500000 conv=notrunc 2>/dev/null
  printf 'end' | dd of="$WORK/s/d/holes" bs=1 seek=3000000 conv=notrunc 2>/dev/null
  printf 'dense\n' >"$WORK/s/d/dense"
  find "$WORK/s" -exec touch -h -d @1700000000 {} +
  tar --sparse --format=gnu -C "$WORK/s" -cf "$WORK/sparse-gnu.tar" .
  tar --sparse --format=posix -C "$WORK/s" -cf "$WORK/sparse-pax.tar" .
  mkimage "$OUT/sparse" gnu "$WORK/sparse-gnu.tar"
  mkimage "$OUT/sparse" pax "$WORK/sparse-pax.tar"
  # What GNU tar itself extracts, to compare with (umoci refuses type S).
  mkdir -p "$OUT/sparse-expected"
  tar -C "$OUT/sparse-expected" -xpf "$WORK/sparse-gnu.tar"
}

# libarchive's bsdtar: its default (restricted pax) and gnutar.
case_bsdtar() {
  payload "$WORK/bs"
  bsdtar -cf "$WORK/bsd-pax.tar" -C "$WORK/bs" .
  bsdtar --format gnutar -cf "$WORK/bsd-gnu.tar" -C "$WORK/bs" .
  mkimage "$OUT/bsdtar" pax "$WORK/bsd-pax.tar"
  mkimage "$OUT/bsdtar" gnu "$WORK/bsd-gnu.tar"
}

# Python's tarfile: duplicates (the later wins), a directory listed after
# its children, a hard link to a file of an earlier layer, whiteouts and
# an opaque directory written by hand.
case_py_layers() {
  python3 - "$WORK" <<'EOF'
import io, sys, tarfile
w = sys.argv[1]
def add(t, name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, uid=0, gid=0):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.uid, i.gid, i.mtime, i.linkname = kind, mode, uid, gid, 1700000000, link
    i.size = len(data)
    t.addfile(i, io.BytesIO(data) if data else None)
with tarfile.open(w + "/l1.tar", "w", format=tarfile.USTAR_FORMAT) as t:
    add(t, "a/b/c/file", data=b"deep\n")
    add(t, "a/b/c", tarfile.DIRTYPE, mode=0o700)
    add(t, "a/b", tarfile.DIRTYPE, mode=0o750, uid=5, gid=6)
    add(t, "a", tarfile.DIRTYPE, mode=0o755)
    add(t, "dup", data=b"first\n", mode=0o600)
    add(t, "dup", data=b"second, longer\n", mode=0o640)
    add(t, "dupdir", data=b"a file first\n")
    add(t, "dupdir", tarfile.DIRTYPE, mode=0o711)
    add(t, "lib/libx.so.1", data=b"\x7fELF shared\n", mode=0o755)
    add(t, "gone/old", data=b"old\n")
    add(t, "keep/old", data=b"hidden by opaque\n")
with tarfile.open(w + "/l2.tar", "w", format=tarfile.GNU_FORMAT) as t:
    add(t, "bin/libx-hardlink", tarfile.LNKTYPE, link="lib/libx.so.1")
    add(t, ".wh.gone", data=b"")
    add(t, "keep/.wh..wh..opq", data=b"")
    add(t, "keep/new", data=b"new\n")
    add(t, "dup", data=b"third\n", mode=0o644)
EOF
  mkimage "$OUT/py-layers" t "$WORK/l1.tar" "$WORK/l2.tar"
}

# A merged-/usr base (`lib -> usr/lib`, `bin -> /usr/bin`, as Debian and
# Ubuntu ship) and a layer written through those links without directory
# entries of its own (`lib/x`), as umoci insert, GNU tar or a hand-made tar
# write it; plus links pointing out of the root (absolute, `..` above it),
# which readers resolve inside the root.
case_py_merged_usr() {
  python3 - "$WORK" <<'EOF'
import io, sys, tarfile
w = sys.argv[1]
def add(t, name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, uid=0, gid=0):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.uid, i.gid, i.mtime, i.linkname = kind, mode, uid, gid, 1700000000, link
    i.size = len(data)
    t.addfile(i, io.BytesIO(data) if data else None)
with tarfile.open(w + "/base.tar", "w", format=tarfile.PAX_FORMAT) as t:
    for d in ["usr", "usr/lib", "usr/bin", "opt", "d"]:
        add(t, d + "/", tarfile.DIRTYPE, mode=0o755)
    add(t, "usr/lib/libbase.so", data=b"base\n")
    add(t, "usr/lib/old", data=b"old\n")
    add(t, "lib", tarfile.SYMTYPE, link="usr/lib")
    add(t, "bin", tarfile.SYMTYPE, link="/usr/bin")
    add(t, "abs", tarfile.SYMTYPE, link="/opt")
    add(t, "d/up", tarfile.SYMTYPE, link="../../../..")
with tarfile.open(w + "/over.tar", "w", format=tarfile.GNU_FORMAT) as t:
    add(t, "lib/x", data=b"x\n")
    add(t, "lib/sub/y", data=b"y\n")
    add(t, "bin/tool", data=b"tool\n", mode=0o755)
    add(t, "bin/sh", data=b"#!/bin/sh\n", mode=0o755)
    add(t, "lib/.wh.old")
    add(t, "lib/x.link", tarfile.LNKTYPE, link="lib/x")
    add(t, "abs/a", data=b"a\n")
    add(t, "d/up/top", data=b"top\n")
with tarfile.open(w + "/opaque.tar", "w", format=tarfile.GNU_FORMAT) as t:
    add(t, "lib/sub/.wh..wh..opq")
    add(t, "lib/sub/z", data=b"z\n")
EOF
  mkimage "$OUT/py-merged-usr" t "$WORK/base.tar" "$WORK/over.tar" "$WORK/opaque.tar"
}

# A package base as a pipeline hands it over: the fixture base's rootfs
# (unpacked by umoci) inserted at `/` into a fresh umoci image.
case_umoci_base() {
  : "${FIXTURES:?set FIXTURES to the fixtures directory}"
  umoci unpack --image "$FIXTURES/base:base-amd64" "$WORK/fb" >/dev/null
  umoci init --layout "$OUT/umoci-base"
  umoci new --image "$OUT/umoci-base:t"
  umoci insert --image "$OUT/umoci-base:t" "$WORK/fb/rootfs" /
}

for c in "$@"; do
  "case_${c//-/_}"
done
