"""``ModelAnalyzer``, the same class as ``bdrk.model_analyzer.ModelAnalyzer``."""

from bdrk.model_analyzer import ModelAnalyzer, ModelTask, ModelTypes

__all__ = ["ModelAnalyzer", "ModelTask", "ModelTypes"]
