"""Regenerate the synthetic customer data in data/ (fixed seed, so the files never change)."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

FIELDS = ["customer_id", "tenure_months", "monthly_charges", "support_calls", "annual_contract"]


def customer(rng: random.Random, number: int) -> dict[str, object]:
    tenure = rng.randint(1, 72)
    charges = round(rng.uniform(20, 120), 2)
    calls = min(int(rng.expovariate(0.6)), 10)
    annual = int(rng.random() < 0.4)
    return {
        "customer_id": f"C{number:05d}",
        "tenure_months": tenure,
        "monthly_charges": charges,
        "support_calls": calls,
        "annual_contract": annual,
    }


def churn_probability(row: dict[str, object]) -> float:
    score = (
        -1.0
        - 0.05 * float(row["tenure_months"])
        + 0.025 * float(row["monthly_charges"])
        + 0.45 * float(row["support_calls"])
        - 1.3 * float(row["annual_contract"])
    )
    return 1 / (1 + math.exp(-score))


def main() -> None:
    rng = random.Random(20191125)
    data = Path(__file__).parent / "data"
    data.mkdir(exist_ok=True)
    with (data / "customers.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, [*FIELDS, "churned"])
        writer.writeheader()
        for number in range(1, 1201):
            row = customer(rng, number)
            row["churned"] = int(rng.random() < churn_probability(row))
            writer.writerow(row)
    with (data / "new_customers.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for number in range(5001, 5201):
            writer.writerow(customer(rng, number))


if __name__ == "__main__":
    main()
