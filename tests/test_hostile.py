"""Steps and users acting as attackers would: every case must end in a clear error, with nothing
half-written and no run left in a state that is not true.

The sections follow the threat they answer; each case names the behaviour it holds.
"""

from __future__ import annotations

# --- 1. A step sees its own run only -----------------------------------------------------------


# --- 2. What a run may set in a step's environment --------------------------------------------


# --- 3. Bounded work ---------------------------------------------------------------------------


# --- 4. Every run ends in a true state ---------------------------------------------------------


# --- 4b. Followers, the worker, archives, idempotency, addresses, repositories ------------------


# --- 5. Masking --------------------------------------------------------------------------------


# --- 6. Deployment -----------------------------------------------------------------------------


# --- 7. The Docker executor --------------------------------------------------------------------
