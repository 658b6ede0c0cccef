"""Features shared by training and scoring, so both read customers the same way."""

from __future__ import annotations

import csv
import os
from pathlib import Path

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "annual_contract"]
# Bedrock binds the artefact directory at /artefact; without a sandbox it says where it is.
ARTEFACT = Path(os.environ.get("BEDROCK_ARTEFACT_DIR", "/artefact"))


def read_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def vector(row: dict[str, str], means: list[float], scales: list[float]) -> list[float]:
    return [1.0] + [
        (float(row[name]) - mean) / scale
        for name, mean, scale in zip(FEATURES, means, scales, strict=False)
    ]
