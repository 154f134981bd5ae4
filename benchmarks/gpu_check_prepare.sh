#!/usr/bin/env bash
# What the GPU machine lacks, made ready here (a machine with PyPI and the project's environment installed), from the
# repository root: `bash benchmarks/gpu_check.sh --prepare` (or this script).
#
# The device machine has no network and its image lacks most of arabicpeft's requirements (KINDS.md); one call
# carries at most 64 MiB with the working tree. So: download, for the device's Python 3.12 on Linux x86-64, the
# wheels `python benchmarks/_gpu_check.py carry-list` names (this environment's versions; whisper-base's two wheels
# among them), pack them into one tar and cut it into .gpucheck/part-NN of at most $PIECE_MIB MiB each (default 50:
# the working tree travels too). Each device call carries one part; parts already carried stay on the warm machine
# (an ignored path a call does not name is kept), and gpu_check.sh joins and installs them (benchmarks/README.md,
# "The GPU check").
set -euo pipefail
cd "$(dirname "$0")/.."
PIECE_MIB=${PIECE_MIB:-50}
PY=${PYTHON:-python}
WHEELS=.gpucheck/wheels
rm -rf .gpucheck && mkdir -p "$WHEELS"
"$PY" benchmarks/_gpu_check.py carry-list >.gpucheck/carry.txt
PLATFORMS=()
for n in 39 35 34 31 28 27 24 17 5; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64)
# one requirement at a time: pip names the one that has no wheel for the device instead of failing them all
while read -r req; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$WHEELS" "$req" || { echo "no wheel of $req for CPython 3.12 on Linux x86-64" >&2; exit 1; }
done <.gpucheck/carry.txt
tar -cf - -C "$WHEELS" . | split -b "${PIECE_MIB}m" -d -a 2 - .gpucheck/part-
rm -rf "$WHEELS"
(cd .gpucheck && sha256sum part-* >manifest.txt)  # gpu_check.sh checks every part against it
echo "wheels: $(wc -l <.gpucheck/carry.txt) ($(du -sh .gpucheck | cut -f1) in $(ls .gpucheck/part-* | wc -l) parts):"
ls -l .gpucheck/part-*
echo "Device calls (benchmarks/README.md, \"The GPU check\"): one per part, back to back on the warm machine,"
echo "each carrying its part; the last one also carries .gpucheck/manifest.txt and runs: bash benchmarks/gpu_check.sh"
