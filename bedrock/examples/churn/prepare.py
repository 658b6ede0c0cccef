"""Step 1: split the data and compute feature scaling, leaving both in /artefact."""

from __future__ import annotations

import json
import random
import statistics

from features import ARTEFACT, FEATURES, read_rows

rows = read_rows("data/customers.csv")
random.Random(int(__import__("os").environ.get("SEED", "7"))).shuffle(rows)
cut = int(len(rows) * 0.8)
train, valid = rows[:cut], rows[cut:]
scaling = {
    "means": [statistics.fmean(float(r[f]) for r in train) for f in FEATURES],
    "scales": [statistics.pstdev(float(r[f]) for r in train) or 1.0 for f in FEATURES],
}
ARTEFACT.mkdir(parents=True, exist_ok=True)
(ARTEFACT / "split.json").write_text(json.dumps({"train": train, "valid": valid}))
(ARTEFACT / "scaling.json").write_text(json.dumps(scaling, indent=2))
print(f"prepared {len(train)} training and {len(valid)} validation rows")
