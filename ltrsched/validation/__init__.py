"""Simulator vs engine: measured step-time profiles (:mod:`ltrsched.validation.profiling`), comparison
reports (:mod:`ltrsched.validation.compare`), and the ``replay`` / ``profile`` / ``validate`` commands."""
