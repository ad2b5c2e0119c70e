"""sysgym.experiments: the top layer -- the Hydra apps and the command line.

`run.py` (the `sysgym run` Hydra app; `runner.py` does one instance x one method x one seed -> one record),
`validate.py` (re-scores records with their family's evaluator), `leaderboard.py` (rliable aggregates and plots),
`demo.py` (the main job), `cli.py` (the `sysgym` command) and `commands/` (one module per family command:
`sysgym vm`, `sysgym jobs`, `sysgym serve`, ...). It may import every other sub-package; none imports it.
"""
