# Source on the device after setup.sh c: the carried packages and ltrsched from the working tree.
export PYTHONPATH="/tmp/site:$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
export VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_ENABLE_V1_MULTIPROCESSING=0 PYTHONUNBUFFERED=1
ltrsched() { python3 -m ltrsched.cli "$@"; }
