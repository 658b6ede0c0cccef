"""Batch scoring: score new customers with the model version Bedrock put in /artefact."""

from __future__ import annotations

import csv
import json
import math
import os
import sys

from features import ARTEFACT, read_rows, vector

THRESHOLD = float(os.environ.get("THRESHOLD", "0.5"))
OUTPUT = os.environ.get("OUTPUT_PATH", "")

model = json.loads((ARTEFACT / "model.json").read_text())
rows = read_rows("data/new_customers.csv")
scored = []
for row in rows:
    x = vector(row, model["means"], model["scales"])
    p = 1 / (1 + math.exp(-sum(w * v for w, v in zip(model["weights"], x, strict=False))))
    scored.append({"customer_id": row["customer_id"], "churn_probability": round(p, 4)})

at_risk = sum(s["churn_probability"] >= THRESHOLD for s in scored)
if OUTPUT:
    with open(OUTPUT, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["customer_id", "churn_probability"])
        writer.writeheader()
        writer.writerows(scored)
    print(f"wrote {len(scored)} scores to {OUTPUT}")
print(f"scored {len(scored)} customers: {at_risk} at risk of churning (threshold {THRESHOLD})")
sys.stdout.flush()
