"""The serving base class of Bedrock Express: subclass it in ``serve.py`` and fill in predict."""

import json
from typing import Any, AnyStr, BinaryIO, Dict, Optional


class BaseModel:
    """A request goes through ``pre_process``, ``predict``, then ``post_process``.

    The server calls ``pre_process`` with the HTTP body (and any uploaded files), hands what it
    returns to ``predict``, and returns ``post_process``'s answer to the caller as JSON.
    """

    def pre_process(self, http_body: AnyStr, files: Optional[Dict[str, BinaryIO]] = None) -> Any:
        """The features predict takes; by default the body parsed as JSON."""
        return json.loads(http_body)

    def predict(self, features: Any) -> Any:
        raise NotImplementedError("Override predict(features) in the model served.")

    def post_process(self, score: Any, prediction_id: str) -> Any:
        """The response body; by default the score with the prediction's id."""
        return {"result": score, "prediction_id": prediction_id}
