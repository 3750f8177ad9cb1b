"""The vLLM engine adapter (vLLM 0.26 and 0.32, CPU build or GPU): the same policy objects inside real vLLM.

* :mod:`ltrsched.engine.scheduler`: ``PolicyScheduler``, vLLM's V1 scheduler ordered by a policy through
  :func:`ltrsched.policies.form_batch` (imports vLLM);
* :mod:`ltrsched.engine.replay`: the loop that adds requests at their arrival times and steps an engine;
* :mod:`ltrsched.engine.runner`: the real engine (``LLMEngine`` on a CPU or GPU; :mod:`ltrsched.engine.platform`
  says which and describes the host); :mod:`ltrsched.engine.emulate`:
  vLLM's scheduler on the CPU with modelled step times;
* :mod:`ltrsched.engine.live_table`, :mod:`ltrsched.engine.step_log`: the adapter's arrays and step record.

Nothing here imports ``ltrsched.sim`` (``ltrsched.validation`` uses both), and nothing imports vLLM at
package import: ``ltrsched --help`` works without it.
"""
