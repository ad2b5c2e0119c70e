"""Every Python example in the README runs as written."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
README = REPO / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    code = BLOCKS[index]
    if "../shared/" in code and not SHARED.is_dir():
        pytest.skip(f"README block {index} reads public traces from ../shared, absent here")
    # Run from a scratch checkout-like folder so files the examples write stay out of the repository and
    # `../shared/...` paths resolve as they do from the repository root.
    work = tmp_path / "main"
    work.mkdir()
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    monkeypatch.chdir(work)
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
