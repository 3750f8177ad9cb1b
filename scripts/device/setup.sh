#!/usr/bin/env bash
# On the lent H100: unpack one carry of scripts/device/build_bundle.sh into /tmp/site.
#   run(command="bash scripts/device/setup.sh a", carry=[".device/a"])      # then, within 30 s:
#   run(command="bash scripts/device/setup.sh b", carry=[".device/b"])      # then, within 30 s:
#   run(command="bash scripts/device/setup.sh c && . scripts/device/env.sh && ltrsched profile ...", carry=[".device/c"])
set -euo pipefail
part=$1
mkdir -p /tmp/site /tmp/vllm-parts
case "$part" in
  a) cp .device/a/vllm.tar.xz.part* /tmp/vllm-parts/ ;;
  b) cp .device/b/vllm.tar.xz.part* /tmp/vllm-parts/ 2>/dev/null || true
     cat /tmp/vllm-parts/vllm.tar.xz.part* | xz -d | tar -xf - -C /tmp/site
     python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/b/*.whl ;;
  c) python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/c/*.whl
     mkdir -p /tmp/workloads && cp .device/c/*.parquet /tmp/workloads/
     . "$(dirname "$0")/env.sh"
     python3 -c "import vllm, polars, simpy, ltrsched.engine.scheduler; print('vllm', vllm.__version__, 'ready')" ;;
  *) echo "usage: setup.sh a|b|c" >&2; exit 2 ;;
esac
