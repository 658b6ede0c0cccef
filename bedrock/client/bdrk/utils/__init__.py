"""Names Basis AI's client kept under ``bdrk.utils``, which notebooks still reach for."""
