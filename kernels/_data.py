"""Loads the packaged YAML catalogues once (importlib.resources, so an installed wheel works too)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from sysgym.errors import UnknownNameError


@lru_cache(maxsize=None)
def load_yaml(name: str) -> dict:
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def unknown_name_error(kind: str, name: object, known: list[str]) -> UnknownNameError:
    """sysgym's named error (a KeyError too) listing the valid names, so a typo is fixed without the source."""
    return UnknownNameError(kind, str(name), known)
