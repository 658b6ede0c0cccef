"""Step 2: logistic regression by gradient descent; the model and its metrics go to /artefact."""

from __future__ import annotations

import json
import math
import os

from features import ARTEFACT, FEATURES, vector

LEARNING_RATE = float(os.environ.get("LEARNING_RATE", "0.1"))
EPOCHS = int(os.environ.get("EPOCHS", "300"))

split = json.loads((ARTEFACT / "split.json").read_text())
scaling = json.loads((ARTEFACT / "scaling.json").read_text())
means, scales = scaling["means"], scaling["scales"]


def examples(rows):
    return [(vector(r, means, scales), float(r["churned"])) for r in rows]


def predict(weights, x):
    return 1 / (1 + math.exp(-sum(w * v for w, v in zip(weights, x, strict=False))))


train, valid = examples(split["train"]), examples(split["valid"])
weights = [0.0] * (len(FEATURES) + 1)
for epoch in range(1, EPOCHS + 1):
    gradient = [0.0] * len(weights)
    for x, y in train:
        error = predict(weights, x) - y
        gradient = [g + error * v for g, v in zip(gradient, x, strict=False)]
    weights = [w - LEARNING_RATE * g / len(train) for w, g in zip(weights, gradient, strict=False)]
    if epoch % 100 == 0:
        loss = -sum(
            y * math.log(predict(weights, x)) + (1 - y) * math.log(1 - predict(weights, x))
            for x, y in train
        ) / len(train)
        print(f"epoch {epoch}: log loss {loss:.4f}")

accuracy = sum((predict(weights, x) >= 0.5) == (y == 1.0) for x, y in valid) / len(valid)
print(f"validation accuracy {accuracy:.3f}")
(ARTEFACT / "split.json").unlink()  # training data does not belong in the model version
(ARTEFACT / "model.json").write_text(
    json.dumps({"features": FEATURES, "weights": weights, **scaling}, indent=2)
)
(ARTEFACT / "metrics.json").write_text(json.dumps({"validation_accuracy": accuracy}, indent=2))
