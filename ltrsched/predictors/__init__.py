"""Output-length predictors feeding the LTR and classification policies.

torch is imported lazily (only when a predictor is built), so the simulator and the CLI work without it.
Labels in the built-in data are ChatGPT's ShareGPT response lengths, a stand-in for Llama-3's own.
"""

from ltrsched.predictors.config import PredictorConfig
from ltrsched.predictors.losses import listmle_loss, pairwise_loss

__all__ = ["PredictorConfig", "listmle_loss", "pairwise_loss"]
