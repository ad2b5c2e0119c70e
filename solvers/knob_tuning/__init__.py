"""Knob-tuning methods; importing registers them (`knob_tuning.tpe`, `.gp`, `.cmaes`, `.random`, `.llamatune`,
`.default`)."""
from sysgym.solvers.knob_tuning import methods  # noqa: F401
