from pathlib import Path

import pytest

AZURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "azure_llm_2023"
AZURE_ALT = Path("/work/shared/data/azure_llm_2023")


def azure_path(name: str) -> Path:
    for base in (AZURE, AZURE_ALT):
        p = base / name
        if p.is_file():
            return p
    pytest.skip(f"Azure LLM inference trace {name} not found under ../shared/data/azure_llm_2023 "
                "(public data folder absent on this machine)")
