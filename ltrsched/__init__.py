"""ltrsched: design, simulate and validate request schedulers for LLM serving.

Sub-packages (dependencies point toward ``policies`` and ``workloads``):

- ``workloads``  request records, loaders, arrival processes.
- ``policies``   scheduling policies and the one batch-forming rule set (pure Python + numpy).
- ``sim``        SimPy simulator of vLLM-style iteration-level serving, step-time profiles, metrics.
- ``predictors`` output-length rankers (ListMLE, classification) feeding the policies.
- ``engine``     the same policies inside real vLLM (``scheduler_cls``).
- ``validation`` simulator-vs-engine comparison.
"""

__version__ = "0.1.0"
