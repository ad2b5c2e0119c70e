"""Problem families, one sub-package each. Importing this registers every family and its envs.

A family registers itself in `envs/<family>/registration.py`; discovery means adding a family never
edits this file.
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
