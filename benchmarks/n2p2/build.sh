#!/usr/bin/env bash
# Builds n2p2's serial nnp-predict and predict_loop (this folder) for benchmarks/user_speed.py --n2p2.
#
#   benchmarks/n2p2/build.sh N2P2_SOURCE OUT
#
# N2P2_SOURCE: a checkout of https://github.com/CompPhysVienna/n2p2 (its src/ holds the makefiles);
# needs g++, Eigen 3 and GSL headers (Debian: libeigen3-dev libgsl-dev).  n2p2 is built with the
# defaults of its makefile.gnu (-O3 -march=native, no OpenMP: serial); OUT receives nnp-predict and
# predict_loop.  Nothing of n2p2 is part of this repository (GPL-3.0).
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 N2P2_SOURCE OUT" >&2
    exit 2
fi
source_dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
if [ ! -f "$source_dir/src/makefile" ]; then
    echo "$0: $source_dir/src/makefile not found: is $1 an n2p2 checkout?" >&2
    exit 2
fi
# (not make -C: n2p2's makefile parses a sub-make's output, which -C fills with directory lines)
(cd "$source_dir/src" && make libnnp nnp-predict COMP=gnu PROJECT_CC=g++)
# predict_loop with the flags and options n2p2 itself was built with (its classes' layout
# depends on them), read from its makefile.gnu, linked as nnp-predict is (libnnp alone)
setting() {
    (cd "$source_dir/src" && make -s -f makefile.gnu -f <(printf 'print-%%:\n\t@echo $($*)\n') "print-$1")
}
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
# shellcheck disable=SC2046  # the settings are lists of words
g++ $(setting PROJECT_CFLAGS) $(setting PROJECT_OPTIONS) -I"$source_dir/include" $eigen \
    -o "$out/predict_loop" "$here/predict_loop.cpp" "$source_dir/lib/libnnp.a"
cp "$source_dir/bin/nnp-predict" "$out/"
echo "built $out/nnp-predict and $out/predict_loop"
