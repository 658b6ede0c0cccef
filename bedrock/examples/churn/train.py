"""Step 2: logistic regression by gradient descent; the model goes to /artefact, its metrics to
Bedrock through its client (`bdrk`), which the step installs from the package index Bedrock
serves, and which only prints them when run outside Bedrock."""

from __future__ import annotations

import json
import math
import os

import bdrk
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


def log_loss(weights, rows):
    return -sum(
        y * math.log(predict(weights, x)) + (1 - y) * math.log(1 - predict(weights, x))
        for x, y in rows
    ) / len(rows)


def auc(labels, scores):
    """The chance that a churner scores above a customer who stays (ties count half)."""
    ranked = sorted(zip(scores, labels, strict=True))
    positives = sum(labels)
    negatives = len(labels) - positives
    rank_sum, index = 0.0, 0
    while index < len(ranked):
        end = index
        while end < len(ranked) and ranked[end][0] == ranked[index][0]:
            end += 1
        average_rank = (index + 1 + end) / 2
        rank_sum += average_rank * sum(label for _, label in ranked[index:end])
        index = end
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


bdrk.init()
with bdrk.start_run():
    train, valid = examples(split["train"]), examples(split["valid"])
    weights = [0.0] * (len(FEATURES) + 1)
    for epoch in range(1, EPOCHS + 1):
        gradient = [0.0] * len(weights)
        for x, y in train:
            error = predict(weights, x) - y
            gradient = [g + error * v for g, v in zip(gradient, x, strict=False)]
        weights = [
            w - LEARNING_RATE * g / len(train) for w, g in zip(weights, gradient, strict=False)
        ]
        if epoch % 10 == 0:
            loss = log_loss(weights, train)
            bdrk.log_metric("train_log_loss", loss, x=epoch)
            if epoch % 100 == 0:
                print(f"epoch {epoch}: log loss {loss:.4f}")

    labels = [y for _, y in valid]
    probabilities = [predict(weights, x) for x, _ in valid]
    accuracy = sum((p >= 0.5) == (y == 1.0) for p, y in zip(probabilities, labels, strict=True))
    accuracy /= len(valid)
    print(f"validation accuracy {accuracy:.3f}")
    bdrk.log_metrics(
        {"validation_accuracy": accuracy, "validation_auc": auc(labels, probabilities)}
    )
    bdrk.log_binary_classifier_metrics(labels, probabilities)
(ARTEFACT / "split.json").unlink()  # training data does not belong in the model version
(ARTEFACT / "model.json").write_text(
    json.dumps({"features": FEATURES, "weights": weights, **scaling}, indent=2)
)
(ARTEFACT / "metrics.json").write_text(json.dumps({"validation_accuracy": accuracy}, indent=2))
