#!/usr/bin/env bash
# The one test command: installs the real components the tests drive
# (as root, with apt), then runs every test. As non-root it says what to
# install instead.
set -euo pipefail
cd "$(dirname "$0")/.."

# tool -> Debian package
need=(
  skopeo:skopeo umoci:umoci docker-registry:docker-registry
  containerd:containerd ctr:containerd runc:runc
  qemu-aarch64-static:qemu-user-static qemu-riscv64-static:qemu-user-static
  qemu-x86_64-static:qemu-user-static dpkg-deb:dpkg apt-get:apt
  htpasswd:apache2-utils update-alternatives:dpkg getfattr:attr zstd:zstd openssl:openssl
  script:util-linux
  aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu riscv64-linux-gnu-gcc:gcc-riscv64-linux-gnu
  buildah:buildah bsdtar:libarchive-tools python3:python3
)
missing=()
for pair in "${need[@]}"; do
  tool=${pair%%:*}; pkg=${pair#*:}
  command -v "$tool" >/dev/null 2>&1 || missing+=("$pkg")
done
# tests/referrers.rs installs the SPDX validator (PyPI spdx-tools) into a venv
# under target/ once; Debian splits venv/ensurepip off python3.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "tests/run.sh: missing test dependencies; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# Every test binary's result, then one closing line with the totals.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
