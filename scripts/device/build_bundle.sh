#!/usr/bin/env bash
# Build what the lent H100 needs to run ltrsched's engine commands, as carries of <= 60 MiB each.
#
#   scripts/device/build_bundle.sh            # here (network to PyPI), writes .device/{a,b,c}/
#
# The H100 has Python 3.12, torch 2.11.0+cu130, transformers, scipy, matplotlib, click, tqdm, pandas;
# it has no network and lacks vLLM, pydantic, polars and simpy (../shared/tools/vllm-on-device/README.md).
# vLLM 0.26.0 pins torch 2.11.0 (the device's); its wheel minus what an H100 does not load
# (FlashAttention-2 kernels, the MoE kernels, the Rust router, Blackwell FMHA) packs to ~75 MB of
# tar.xz, split over carries a and b. Carry c holds polars' runtime, the other small wheels and the
# workloads as parquet (so the device needs neither the ShareGPT package nor the tokenizer).
# Each `run` call carries one folder; the next call must come while the machine is warm (30 s).
# scripts/device/setup.sh unpacks them there. Untested on the device so far (no GPU lent yet).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
rm -rf .device && mkdir -p .device/a .device/b .device/c .device/tmp
PY=(--python-version 3.12 --implementation cp)
for n in 17 24 27 28 31 34 35 39; do PY+=(--platform "manylinux_2_${n}_x86_64"); done  # the device has glibc 2.39
PY+=(--platform manylinux2014_x86_64)
dl() {  # dl DIR PKG==VER...: each package on its own, failing loudly
  local dir=$1; shift
  for pkg in "$@"; do python3 -m pip download -q --no-deps --only-binary=:all: "${PY[@]}" -d "$dir" "$pkg"; done
}

# vLLM, stripped and split
dl .device/tmp vllm==0.26.0
mkdir -p .device/tmp/vllm && (cd .device/tmp/vllm && unzip -q ../vllm-0.26.0-*.whl)
(cd .device/tmp/vllm && rm -rf vllm/vllm_flash_attn/_vllm_fa2_C*.so vllm/vllm-rs vllm/_moe_C_stable_libtorch*.so \
    vllm/third_party/fmha_sm100 && tar -cf - vllm vllm-0.26.0.dist-info | xz -6 -T2 > ../vllm.tar.xz)
split -b 56M -d .device/tmp/vllm.tar.xz .device/tmp/vllm.tar.xz.part
mv .device/tmp/vllm.tar.xz.part00 .device/a/
mv .device/tmp/vllm.tar.xz.part* .device/b/ 2>/dev/null || true

# vLLM's runtime set for the engine (from the vllm-on-device notes) + ltrsched's missing dependencies
dl .device/b pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    cachetools==8.0.2 cbor2==6.3.0 msgspec==0.22.0 pyzmq==27.3.0 pybase64==1.5.1 openai==3.57.0 \
    httpx2==2.16.2 sniffio==1.3.1 openai-harmony==0.0.8 partial-json-parser==0.2.1.1.post7 \
    fastapi==0.136.3 starlette==1.10.0 llguidance==1.7.6 xgrammar==0.2.7 apache-tvm-ffi==0.1.10
POLARS=$(python3 -c "import polars; print(polars.__version__)")
dl .device/c "polars==$POLARS" "polars-runtime-32==$POLARS" simpy==4.1.2

# workloads as parquet: the validation burst and the profile needs none
python3 - <<'PY'
from ltrsched.workloads import load_workload
load_workload("sharegpt", num_requests=1000, seed=0).save(".device/c/sharegpt-1000.parquet")
load_workload("sharegpt", num_requests=2000, seed=0).save(".device/c/sharegpt-2000.parquet")
PY
rm -rf .device/tmp
du -sh .device/a .device/b .device/c
for d in a b c; do
  size=$(du -sm ".device/$d" | cut -f1)
  [ "$size" -le 62 ] || { echo "carry $d is ${size} MiB: over the 64 MiB limit with the working tree" >&2; exit 1; }
done
echo "ok: carry .device/a, then .device/b, then .device/c (scripts/device/setup.sh a|b|c)"
