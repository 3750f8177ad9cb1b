"""Pictures of runs: CDF plots of per-request metrics (:mod:`.cdf`) and Chrome/Perfetto traces of a run's
steps (:mod:`.chrome_trace`)."""
