"""Model explanations, under the first generation's names."""

from bdrk.model_analyzer import ModelTask, ModelTypes

__all__ = ["ModelTask", "ModelTypes"]
