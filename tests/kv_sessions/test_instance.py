"""The kv_sessions instance, generator and the old names (specs, imports) that now lead here."""
import json

import numpy as np
import pytest

import sysgym
from sysgym.envs.kv_sessions import GENERATOR, SessionWorkload, generate_sessions, load
from sysgym.errors import InvalidInstanceError, TraceFormatError

COLUMNS = ("session", "turn", "arrival", "end", "new_input", "output", "ctx_before", "group")


def _same_workload(a, b):
    for key in COLUMNS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.gap_kind == b.gap_kind and a.capacity == b.capacity and a.prefix_tokens == b.prefix_tokens


def test_old_specs_resolve_to_kv_sessions():
    old = sysgym.instance("kv_eviction/sessions?seed=0&kind=agent&n=20&cap=8000")
    assert isinstance(old, SessionWorkload) and old.name == "kv_sessions/custom?seed=0&capacity=8000"
    _same_workload(old, generate_sessions(seed=0, kind="agent", num_sessions=20, capacity=8000))
    _same_workload(old, GENERATOR(seed=0, preset="agent"))  # the README table's workload
    assert sysgym.instance(old.name).digest() == old.digest()
    chat = sysgym.instance("kv_eviction/sessions?seed=2&kind=chat&n=5&cap=6000")
    _same_workload(chat, generate_sessions(seed=2, kind="chat", num_sessions=5, capacity=6000))
    assert sysgym.get_family("kv_eviction").name == "kv_eviction"  # the token level keeps its name
    assert sysgym.instance("kv_eviction/tiny?seed=0").name == "kv_eviction/tiny?seed=0"


def test_old_import_paths_keep_working():
    from sysgym.envs.kv_eviction.sessions import SESSION_POLICIES, evaluate_sessions, run_session_policy
    from sysgym.solvers.kv_eviction.session_cpsat import solve_sessions_cpsat

    w = generate_sessions(seed=0, num_sessions=6, capacity=6000)
    items, _ = solve_sessions_cpsat(w)
    assert evaluate_sessions(w, items, serve=False)["recompute_tokens"] <= min(
        evaluate_sessions(w, run_session_policy(w, p), serve=False)["recompute_tokens"]
        for p in SESSION_POLICIES if p != "prefix")


def test_save_load_roundtrip_and_named_errors(tmp_path):
    w = GENERATOR(seed=3, preset="chat")
    assert load(w.save(tmp_path / "w.json")).digest() == w.digest()
    (tmp_path / "other.json").write_text('{"format": "other"}')
    with pytest.raises(TraceFormatError, match="not a kv_sessions workload"):
        load(tmp_path / "other.json")
    data = w.to_dict()
    del data["capacity"]
    (tmp_path / "partial.json").write_text(json.dumps(data))
    with pytest.raises(TraceFormatError, match="capacity"):
        load(tmp_path / "partial.json")
    data = w.to_dict()
    data["arrival"] = data["arrival"][::-1]
    (tmp_path / "unsorted.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInstanceError, match="sorted"):
        load(tmp_path / "unsorted.json")


def test_presets_and_overrides():
    tiny = GENERATOR(seed=0, preset="tiny")
    assert tiny.num_sessions == 4 and tiny.capacity == 4000 and set(tiny.gap_kind) - {""} <= {
        "read_file", "search", "edit", "run_tests", "web"}
    chat = GENERATOR(seed=0, preset="chat", capacity=6000)
    assert chat.name == "kv_sessions/chat?seed=0&capacity=6000" and set(chat.gap_kind) <= {"user", ""}
    assert GENERATOR(seed=0, preset="chat", capacity=8000).name == "kv_sessions/chat?seed=0"  # the preset's value
    for bad in ({"num_sessions": 0}, {"capacity": -1}, {"rate": 0.0}, {"mean_turns": 0.5}, {"n": 3, "num_sessions": 4}):
        with pytest.raises(InvalidInstanceError):
            GENERATOR(seed=0, preset="tiny", **bad)
    with pytest.raises(sysgym.UnknownNameError, match="kind"):
        GENERATOR(seed=0, kind="batch")
