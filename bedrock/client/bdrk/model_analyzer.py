"""Model explanations in the shape of Basis AI's ``ModelAnalyzer``.

With shap installed, ``analyze()`` explains the test features and logs each feature's global
importance (the mean absolute SHAP value) as a metric ``feature_importance/<feature>``. Without
it, the analysis says once that it skipped the explanation; a script never fails for want of it.
"""

import enum
from typing import Any, Callable, Dict, List, Optional, Tuple

import bdrk
from bdrk import _http, _values

IMPORTANCE_PREFIX = "feature_importance/"


class ModelTypes(enum.Enum):
    """Which SHAP explainer fits the model."""

    TREE = "tree"
    LINEAR = "linear"
    DEEP = "deep"
    GENERIC = "generic"  # any model with a predict function: KernelExplainer


class ModelTask(enum.Enum):
    REGRESSION = "regression"
    BINARY_CLASSIFICATION = "binary_classification"
    MULTICLASS_CLASSIFICATION = "multiclass_classification"


Analysis = Tuple[Any, Any, Optional[Dict[str, Any]], Optional[Dict[str, Any]]]


class ModelAnalyzer:
    """Collects a model and its data through a builder chain; ``analyze()`` explains it.

    ``analyze()`` returns ``(shap_values, base_values, global_xai_data, fairness_metrics)``, as
    Basis AI's did: callers unpack those four. What cannot be computed is None.
    """

    def __init__(
        self,
        model: Any,
        model_name: str = "model",
        model_type: Optional[ModelTypes] = None,
        model_task: Optional[ModelTask] = None,
        description: str = "",
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.model_name = model_name
        self.model_type = model_type
        self.model_task = model_task
        self.description = description
        self.predict = None  # type: Optional[Callable[..., Any]]
        self.train_feat = None  # type: Any
        self.test_feat = None  # type: Any
        self.test_inf = None  # type: Any
        self.test_lbs = None  # type: Any
        self.fconfig = None  # type: Optional[Dict[str, Any]]
        self.sample_limit = 200  # type: Optional[int]
        self.shap_values = None  # type: Any
        self.base_values = None  # type: Any
        self.global_xai_data = None  # type: Optional[Dict[str, Any]]
        self.fairness_metrics = None  # type: Optional[Dict[str, Any]]

    def predict_func(self, function: Callable[..., Any]) -> "ModelAnalyzer":
        self.predict = function
        return self

    def train_features(self, features: Any) -> "ModelAnalyzer":
        self.train_feat = features
        return self

    def test_features(self, features: Any) -> "ModelAnalyzer":
        self.test_feat = features
        return self

    def test_inference(self, inference: Any) -> "ModelAnalyzer":
        self.test_inf = inference
        return self

    def test_labels(self, labels: Any) -> "ModelAnalyzer":
        self.test_lbs = labels
        return self

    def fairness_config(self, config: Dict[str, Any]) -> "ModelAnalyzer":
        self.fconfig = config
        return self

    def stored_sample_limit(self, limit: Optional[int]) -> "ModelAnalyzer":
        self.sample_limit = limit
        return self

    def analyze(self) -> Analysis:
        if self.test_feat is None:
            _http.console("ModelAnalyzer: no test_features, nothing to explain.")
        else:
            self._explain()
        if self.fconfig:
            _http.console("ModelAnalyzer: fairness metrics are not computed by this client.")
        return self.shap_values, self.base_values, self.global_xai_data, self.fairness_metrics

    def _explain(self) -> None:
        try:
            import shap
        except ImportError:
            _http.console(
                f"ModelAnalyzer: skipped the explanation of {self.model_name}: "
                "shap is not installed (pip install shap)."
            )
            return
        try:
            explainer = self._explainer(shap)
            values = explainer.shap_values(self.test_feat)
        except Exception as error:  # an explanation is never worth a failed step
            _http.console(f"ModelAnalyzer: could not explain {self.model_name}: {error!r}")
            return
        self.shap_values = values
        self.base_values = getattr(explainer, "expected_value", None)
        self.global_xai_data = _global_importance(values, _feature_names(self.test_feat))
        self._log_importance()

    def _explainer(self, shap: Any) -> Any:
        background = self.train_feat if self.train_feat is not None else self.test_feat
        if self.model_type == ModelTypes.TREE:
            return shap.TreeExplainer(self.model)
        if self.model_type == ModelTypes.LINEAR:
            return shap.LinearExplainer(self.model, background)
        if self.model_type == ModelTypes.DEEP:
            return shap.DeepExplainer(self.model, background)
        predict = self.predict or getattr(self.model, "predict_proba", None) or self.model.predict
        return shap.KernelExplainer(predict, shap.sample(background, 100))

    def _log_importance(self) -> None:
        importance = (self.global_xai_data or {}).get("importance", {})
        limit = _values.MAX_NAME
        bdrk.log_metrics(
            {(IMPORTANCE_PREFIX + name)[:limit]: value for name, value in importance.items()}
        )


def _feature_names(features: Any) -> List[str]:
    columns = getattr(features, "columns", None)
    if columns is not None:
        return [str(column) for column in columns]
    first = list(features[0]) if len(features) else []
    return [f"feature_{index}" for index in range(len(first))]


def _global_importance(values: Any, names: List[str]) -> Dict[str, Any]:
    """Mean |SHAP| per feature, over the examples and (for classifiers) over the classes."""
    per_class = values if isinstance(values, list) else [values]
    totals = [0.0] * len(names)
    count = 0
    for matrix in per_class:
        rows = matrix.tolist() if hasattr(matrix, "tolist") else matrix
        if rows and not isinstance(rows[0], list):
            rows = [rows]
        for row in rows:
            for index, value in enumerate(row[: len(names)]):
                totals[index] += _magnitude(value)
            count += 1
    importance = {name: total / max(count, 1) for name, total in zip(names, totals)}
    return {"importance": importance}


def _magnitude(value: Any) -> float:
    # Newer shap gives one value per class inside each feature's cell.
    if isinstance(value, list):
        return sum(_magnitude(item) for item in value) / max(len(value), 1)
    return abs(float(value))
