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
    add(t, "/usr/bin/tool2", tarfile.LNKTYPE, link="./usr/lib/../bin/tool")
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

for c in "$@"; do
  "case_${c//-/_}"
done
