"""One real PostgreSQL server for the whole test session (initdb + start take about a second)."""
import pytest

from sysgym.envs.pg_knobs import PostgresServer, find_bin_dir
from sysgym.envs.pg_knobs.errors import PostgresError
from sysgym.envs.pg_knobs.ports import port_in_use


@pytest.fixture(scope="session")
def pg():
    try:
        find_bin_dir()
    except PostgresError as exc:
        pytest.skip(f"no PostgreSQL binaries: {exc}")
    server = PostgresServer()
    server.start()
    tmpdir, port = server.tmpdir, server.port
    yield server
    server.stop()
    assert not tmpdir.exists(), f"data directory {tmpdir} left behind"
    assert not port_in_use(port), f"port {port} still in use after stop"


@pytest.fixture
def clean(pg):
    """Each test starts and ends on the server defaults."""
    pg.reset()
    yield pg
    if pg.is_alive():
        pg.reset()
    else:
        pg.recover()
        pg.reset()
