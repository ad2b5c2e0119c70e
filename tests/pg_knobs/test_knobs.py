"""Knob spaces: the shipped LlamaTune space, renamed/removed knobs, normalised coordinates."""
import numpy as np
import pytest

from sysgym.envs.pg_knobs import load_knob_csv, resolve_space
from sysgym.envs.pg_knobs.knobs import llamatune_csv_path
from sysgym.errors import TraceFormatError, UnknownNameError


def test_shipped_llamatune_space_has_112_knobs():
    rows = load_knob_csv(llamatune_csv_path())
    assert len(rows) == 112
    assert rows["shared_buffers"] == {"type": "integer", "default": "1024", "min": 16.0, "max": 1048576.0}
    assert rows["autovacuum"]["choices"] == ["on", "off"]


def test_shipped_copy_matches_shared_data(shared_data):
    shared = shared_data / "pg_knobs" / "llamatune_pg13.csv"
    assert shared.read_text() == llamatune_csv_path().read_text()


def test_malformed_csv_names_the_line(tmp_path):
    bad = tmp_path / "k.csv"
    bad.write_text("name,type,default,min,max,choices\nwork_mem,integer,4096,10,x,\n")
    with pytest.raises(TraceFormatError, match=r"k.csv:2: knob 'work_mem' has a non-numeric range"):
        load_knob_csv(bad)
    bad.write_text("name,type,default,min,max,choices\nfoo,string,a,,,\n")
    with pytest.raises(TraceFormatError, match="type 'string'"):
        load_knob_csv(bad)


def test_llamatune_space_on_pg18_reports_missing_knobs(pg):
    space = resolve_space(pg.settings(), "llamatune-pg13")
    assert len(space) + len(space.missing) == 112
    assert "old_snapshot_threshold" in space.missing  # removed in PostgreSQL 17
    assert "removed" in space.missing["old_snapshot_threshold"]
    contexts = {k.context for k in space.knobs}
    assert "postmaster" in contexts and "user" in contexts and "sighup" in contexts
    assert sum(k.restart for k in space.knobs) >= 10
    sb = space["shared_buffers"]
    assert (sb.lo, sb.hi, sb.unit, sb.log) == (16, 1048576, "8kB", True)
    with pytest.raises(UnknownNameError, match="shared_buffers"):
        space["shared_bufers"]


def test_unit_coordinates_round_trip_and_cover_the_range(pg):
    space = resolve_space(pg.settings(), "pgbench-core")
    lo = space.from_unit(np.zeros(len(space)))
    hi = space.from_unit(np.ones(len(space)))
    assert lo["shared_buffers"] == 16 and hi["shared_buffers"] == 131072
    assert lo["synchronous_commit"] == "local" and hi["synchronous_commit"] == "off"
    cfg = space.from_unit(np.linspace(0.05, 0.95, len(space)))
    again = space.from_unit(space.to_unit(cfg))
    for name in cfg:
        if isinstance(cfg[name], str):
            assert again[name] == cfg[name]
        else:
            assert again[name] == pytest.approx(cfg[name], rel=0.01, abs=1)
    pg.normalise(cfg, space.bounds())  # every decoded configuration is valid on the server
    with pytest.raises(UnknownNameError, match="knob subset"):
        resolve_space(pg.settings(), "everything")
