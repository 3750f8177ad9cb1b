"""The vLLM engine adapter (issue 6): not built yet. It will call ``ltrsched.policies.form_batch``
and ``ltrsched.metrics``; it must never import ``ltrsched.sim``."""
