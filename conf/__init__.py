"""sysgym.conf: the Hydra config groups, found as `pkg://sysgym.conf`.

`config.yaml` (`sysgym run`), `train.yaml` (`sysgym train`), `env/` (one file per problem preset;
`<family>_tiny.yaml` is what the conformance suite trains on), `solver/` (one file per registered solver: its
options with their Python defaults, and per-env `overrides`), `agent/` (one file per RL algorithm, rl-zoo style),
`hydra/launcher/` (joblib, submitit, SLURM, Ray), `sweeps/`.
"""
