"""``medlabel routes`` with CliRunner, and ``medlabel receive`` run as a real process that
storescu sends to and SIGTERM stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlabel.cli.main import app
from tests.support import dcmtk
from tests.support.require import free_port, stop, wait_for_port

runner = CliRunner()


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.stdout, result.stderr


def test_routes_add_list_remove(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert run(home, "projects", "create", "Chest")[0] == 0
    code, out, _ = run(home, "routes", "list")
    assert code == 0 and "no routes" in out
    code, out, _ = run(
        home, "routes", "add", "CHEST_CT", "-p", "Chest", "--allow-aet", "CT1",
        "--allow-host", "10.0.0.0/8",
    )  # fmt: skip
    assert code == 0 and "CHEST_CT -> project 'Chest'" in out
    code, _, err = run(home, "routes", "add", "CHEST_CT", "-p", "Chest")
    assert code == 1 and "already routes" in err and "Traceback" not in err
    code, _, err = run(home, "routes", "add", "BAD\\AET", "-p", "Chest")
    assert code == 1 and "not valid" in err
    code, _, err = run(home, "routes", "add", "X", "-p", "Nope")
    assert code == 1 and "no project" in err
    code, out, _ = run(home, "routes", "list")
    assert code == 0 and "CHEST_CT" in out and "CT1" in out and "10.0.0.0/8" in out
    code, out, _ = run(home, "routes", "remove", "CHEST_CT")
    assert code == 0 and "removed" in out
    code, _, err = run(home, "routes", "remove", "CHEST_CT")
    assert code == 1 and "no route" in err


@pytest.mark.services
def test_receive_runs_until_terminated(tmp_path: Path, ct_series: Path) -> None:
    dcmtk.require_dcmtk()
    home = tmp_path / "h"
    assert run(home, "projects", "create", "Chest")[0] == 0
    assert run(home, "routes", "add", "CHEST", "-p", "Chest")[0] == 0
    port = free_port()
    env = dict(os.environ, MEDLABEL_HOME=str(home))
    main = "from medlabel.cli.main import app; app()"
    cmd = [sys.executable, "-c", main, "receive", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, 60, proc)
        assert dcmtk.echo(port, "MEDLABEL").ok
        (result,) = dcmtk.store(port, "CHEST", sorted(ct_series.iterdir()))
        assert result.ok, result.output
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert b"received 1 batch(es): 1 image(s) imported" in out, (out, err)
    code, listed, _ = run(home, "projects", "list")
    assert code == 0 and "Chest" in listed and "no images" not in listed


def test_serve_with_workers_runs_one_receiver_in_the_supervisor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlabel.cli.receive import start_beside_workers
    from medlabel.core.settings import Settings

    port = free_port()
    monkeypatch.setenv("MEDLABEL_DICOM_PORT", str(port))
    settings = Settings(home=tmp_path / "h", preload_engines=[])
    at_exit: list[Callable[[], None]] = []
    monkeypatch.setattr("atexit.register", at_exit.append)
    start_beside_workers(settings, 1)  # one worker: the app's lifespan runs it instead
    assert at_exit == [] and os.environ["MEDLABEL_DICOM_PORT"] == str(port)
    start_beside_workers(settings, 4)
    try:
        wait_for_port(port, 30)
        # the workers, reading their settings from the environment, will not listen
        assert "MEDLABEL_DICOM_PORT" not in os.environ
        assert Settings(home=tmp_path / "h").dicom_port is None
    finally:
        for stop_receiver in at_exit:
            stop_receiver()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
