"""`hydra/launcher=sysgym_ray`: every job of a `sysgym run --multirun` sweep as a Ray task (see
`sysgym.experiments.ray_sweep`). Hydra finds launchers in the `hydra_plugins` namespace package; this module
and `ray_launcher` are imported on every Hydra start-up, so neither imports Ray at module level."""
