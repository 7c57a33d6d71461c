"""The ``aioplug serve`` command: a real process on a free port, stopped by a signal."""

from __future__ import annotations

import argparse
import json
import pathlib
import signal
import subprocess
import sys

import httpx
import onnx
import pytest

from aioplug.serve.cli import add_arguments, main
from aioplug.testing.models import add_model


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_command_serves_a_repository_and_stops_cleanly(tmp_path: pathlib.Path, stop: signal.Signals) -> None:
    (tmp_path / "add" / "1").mkdir(parents=True)
    onnx.save(add_model(), tmp_path / "add" / "1" / "model.onnx")
    config = tmp_path / "server.json"
    config.write_text(json.dumps({"max_queued_requests": 3}))
    process = subprocess.Popen(
        [sys.executable, "-m", "aioplug.serve", str(tmp_path), "--port", "0", "--config", str(config),
         "--device", "TEMPLATE", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("aioplug serve: listening on http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[4]
        body = {"inputs": [{"name": n, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]} for n in "ab"]}
        response = httpx.post(f"{url}/v2/models/add/infer", json=body)
        assert response.json()["outputs"][0]["data"] == [2, 4, 6, 8]
        metrics = httpx.get(f"{url}/metrics").text
        assert 'aioplug_serve_queue_limit{model="add",version="1"} 3' in metrics
        config_doc = httpx.get(f"{url}/v2/models/add/config").json()
        assert config_doc["parameters"]["device"]["string_value"].startswith("TEMPLATE")
    finally:
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "aioplug serve: stopped" in out


def test_a_bad_repository_is_reported_with_exit_status_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "aioplug serve: error: RepositoryError:" in err and "does not exist" in err


def test_add_arguments_fills_a_subparser() -> None:
    parser = argparse.ArgumentParser(prog="aioplug")
    add_arguments(parser.add_subparsers(dest="command").add_parser("serve"))
    args = parser.parse_args(["serve", "repo", "--port", "0", "--timeout-ms", "250", "-d", "CPU"])
    assert (args.model, args.port, args.default_timeout_ms, args.device) == ("repo", 0, 250.0, "CPU")


def test_aioplug_cli_has_the_serve_subcommand() -> None:
    from aioplug import cli

    parser = cli._parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "serve" not in commands:
        pytest.skip("aioplug/cli.py does not wire `aioplug serve` yet")
    args = parser.parse_args(["serve", "model.onnx", "--port", "0"])
    assert (args.model, args.port) == ("model.onnx", 0)
