#!/usr/bin/env bash
# Build llama.cpp's llama-server (CPU) once, from the llama.cpp sources vendored in the
# llama-cpp-python sdist on PyPI, into a cache outside the checkout. A second run finds the
# binary there and does nothing. Prints the binary's path on the last line of stdout.
#
#   scripts/build_llama_server.sh              build (or find) the cached binary
#   LLAMA_CPP_PYTHON_VERSION=0.3.36            which sdist to build from
#   CORRAL_LLAMA_SERVER_CACHE=~/.cache/corral/llama-server   where binaries are kept
#   LLAMA_BUILD_JOBS=2                         parallel compile jobs
#   LLAMA_CPP_PYTHON_SDIST=path.tar.gz         an sdist already downloaded (skips pip)
#
# Why these flags (docs/llama-server.md): the VMs corral's CI runs on advertise AMX, and
# ggml's AMX kernels fault there on any prompt longer than one token, so AMX is off and the
# instruction set is chosen from /proc/cpuinfo instead of -march=native (GGML_NATIVE=OFF).
set -euo pipefail

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache_root="${CORRAL_LLAMA_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/corral/llama-server}"
jobs="${LLAMA_BUILD_JOBS:-2}"
python="${PYTHON:-python3}"

has_cpu_flag() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }

# Explicit x86 instruction-set flags from what this CPU reports; AMX always off.
isa_flags() {
    local flags=(-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
    local pair
    for pair in avx:GGML_AVX avx2:GGML_AVX2 fma:GGML_FMA f16c:GGML_F16C bmi2:GGML_BMI2 \
        avx512f:GGML_AVX512 avx512vbmi:GGML_AVX512_VBMI avx512_vnni:GGML_AVX512_VNNI \
        avx512_bf16:GGML_AVX512_BF16; do
        if has_cpu_flag "${pair%%:*}"; then flags+=("-D${pair#*:}=ON"); else flags+=("-D${pair#*:}=OFF"); fi
    done
    echo "${flags[@]}"
}

# The cache key names the sdist version and the instruction set, so a machine with a
# different CPU never runs a binary built for another.
isa_tag() { isa_flags | tr ' ' '\n' | grep '=ON' | sed 's/-DGGML_//; s/=ON//' | tr 'A-Z\n' 'a-z-' | sed 's/-$//'; }

target_dir="$cache_root/$version-$(isa_tag)"
binary="$target_dir/bin/llama-server"

if [[ -x "$binary" ]] && "$binary" --version >/dev/null 2>&1; then
    echo "llama-server already built: $binary" >&2
    echo "$binary"
    exit 0
fi

for tool in cmake make "${CXX:-c++}"; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed to build llama-server (apt-get install cmake build-essential)" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/corral-llama-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

sdist="${LLAMA_CPP_PYTHON_SDIST:-}"
if [[ -z "$sdist" ]]; then
    echo "downloading the llama-cpp-python==$version sdist from PyPI ..." >&2
    "$python" -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$version" -d "$work" >&2
    sdist="$work/llama_cpp_python-$version.tar.gz"
fi
tar -xzf "$sdist" -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"

start=$(date +%s)
echo "configuring llama-server ($(isa_tag)) ..." >&2
# shellcheck disable=SC2046
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DGGML_OPENMP=ON $(isa_flags) >"$work/configure.log" 2>&1 ||
    { tail -30 "$work/configure.log" >&2; exit 1; }
echo "compiling llama-server with -j$jobs (several minutes on 2 cores) ..." >&2
cmake --build "$work/build" --target llama-server -j"$jobs" >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log" >&2; exit 1; }
seconds=$(($(date +%s) - start))

mkdir -p "$target_dir/bin.partial"
cp "$work/build/bin/llama-server" "$target_dir/bin.partial/"
"$target_dir/bin.partial/llama-server" --version >"$target_dir/version.txt" 2>&1
printf 'llama-cpp-python %s\nflags %s\nbuild_seconds %s\njobs %s\n' \
    "$version" "$(isa_flags)" "$seconds" "$jobs" >"$target_dir/build-info.txt"
rm -rf "$target_dir/bin" && mv "$target_dir/bin.partial" "$target_dir/bin"
echo "built llama-server in ${seconds}s: $binary" >&2
echo "$binary"
