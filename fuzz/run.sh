#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on the nightly
# toolchain, starting from the committed seed corpus. New inputs go to a
# scratch directory so the committed corpus stays as reviewed; a crash
# leaves its input under fuzz/artifacts/TARGET/ and fails the run.
#
#   fuzz/run.sh            # CI: a minute per target
#   fuzz/run.sh 3600 layer # a long run of one target
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(layer manifest index_json reference recipe treecache)

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz/run.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz from crates.io" >&2
  cargo +nightly install --locked cargo-fuzz
fi

cargo +nightly fuzz build
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  echo "fuzz/run.sh: $t for ${secs}s" >&2
  # -rss_limit_mb: the parsers stream; a target that needs more than this
  # on a small input has an allocation bug. -timeout: no input may hang.
  cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=20 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|Done)|panicked|Failing input' || true
  # cargo fuzz run exits non-zero on a finding; with the pipe above,
  # check for the artifact instead.
  if compgen -G "artifacts/$t/*" >/dev/null; then
    echo "fuzz/run.sh: $t FOUND A FAILURE: see fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
echo "fuzz/run.sh: all targets ran clean (${secs}s each)"
echo "fuzz: ${#targets[@]} passed, 0 failed"
