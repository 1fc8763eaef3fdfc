"""Verifiers: deterministic, time-bounded scoring of model output.

Each verifier module imports its heavy dependencies lazily: ``import rlenv.verifiers.math`` does
not import sympy (only its worker processes do, when a comparison needs it).

- :mod:`rlenv.verifiers.math` — final-answer extraction and mathematical equivalence.
"""

from rlenv.verdict import Verdict

__all__ = ["Verdict"]
