"""Problem families, one sub-package each. Importing this registers every family and its envs.

Each `envs/<family>/` has the same shape (the family kit, docs/DESIGN.md): `instance.py` (the instance and its
`load`), `generator.py` (`GENERATOR`, presets), `evaluate.py` (the only scorer), `env.py` (Gymnasium envs on
`sysgym.env.SysgymEnv`), `simulator.py` where the family simulates, and `registration.py`, which registers the
`Family` and the env ids; discovery means adding a family never edits this file. Envs never import solvers,
agents or experiments: an online family keeps here only the protocol its simulator calls, and its named
policies live in `solvers/<family>/`.
"""
import importlib
import pkgutil


def _register_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg and not info.name.startswith("_"):
            try:
                importlib.import_module(f"{__name__}.{info.name}.registration")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{info.name}.registration":
                    raise  # a real missing dependency inside the family, not a family without envs


_register_all()
