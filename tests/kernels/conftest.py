import os
from pathlib import Path

import pytest

# The shared public data sit beside the repository (../shared/data; SYSGYM_SHARED_DATA points elsewhere, as in
# tests/conftest.py); a user's checkout lacks them.
SHARED_DATA = Path(os.environ.get("SYSGYM_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
A100_PROFILES = SHARED_DATA / "operator_profiles" / "a100"


@pytest.fixture(scope="session")
def a100_profiles() -> Path:
    if not (A100_PROFILES / "compute").is_dir():
        pytest.skip(f"vidur A100 operator profiles not found at {A100_PROFILES} (shared data absent)")
    return A100_PROFILES
