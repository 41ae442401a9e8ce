"""``python -m servers`` as a program: its first line, --port 0, --transport, bad options."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from _srv_helpers import http
from _timeouts import scaled

from servers.__main__ import main

LINE = re.compile(
    r"^duplexbench server listening on http://127\.0\.0\.1:(\d+)"
    r"(?: and tcp://127\.0\.0\.1:\d+)? \(transports: ([a-z, ]+)\)$"
)


@pytest.mark.parametrize(
    "transport,mounted",
    [("all", "longpoll, stream, websocket, tcp"), ("longpoll", "longpoll"), ("stream", "stream"),
     ("websocket", "websocket")],
)
def test_first_line_and_mounts(start_server, transport, mounted):
    server = start_server(transport)
    match = LINE.match(server.output[0])
    assert match, server.output[0]
    assert int(match.group(1)) > 0 and match.group(2) == mounted
    assert server.url == f"http://127.0.0.1:{match.group(1)}"
    paths = {"longpoll": "/poll?topic=t&timeout=0", "stream": "/stream?topic=t",
             "websocket": "/ws?topic=t"}
    for name, path in paths.items():
        if name == "stream" and name in mounted:
            continue  # would stream forever
        status = http(server.url + path)[0]
        if name in mounted:
            assert status in (204, 400), (name, status)  # /ws without upgrade: 400
        else:
            assert status == 404, (name, status)
    assert http(server.url + "/publish?topic=t", "POST", b"x")[0] == 200


@pytest.mark.parametrize(
    "args,words",
    [(["--port", "70000"], "--port"), (["--queue-limit", "0"], "--queue-limit"),
     (["--heartbeat", "0"], "--heartbeat"), (["--ping-timeout", "nan"], "--ping-timeout"),
     (["--retention", "-1"], "--retention"), (["--transport", "carrier-pigeon"], "invalid choice")],
)
def test_bad_options_exit_2_with_reason(args, words):
    done = subprocess.run([sys.executable, "-m", "servers", *args], capture_output=True,
                          text=True, timeout=scaled(20))
    assert done.returncode == 2 and words in done.stderr, done.stderr


def test_port_in_use_is_a_clear_error(start_server):
    server = start_server("longpoll")
    port = server.url.rsplit(":", 1)[1]
    done = subprocess.run([sys.executable, "-m", "servers", "--port", port], capture_output=True,
                          text=True, timeout=scaled(20))
    assert done.returncode == 1 and "cannot listen" in done.stderr


def test_main_is_callable_for_duplexbench_serve(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--queue-limit" in capsys.readouterr().out
    assert main(["--max-payload", "0"]) == 2
    assert "--max-payload" in capsys.readouterr().err


def test_uvloop_flag(start_server):
    server = start_server("all", args=["--uvloop"])
    assert http(server.url + "/healthz")[0] == 200


def test_help_shows_every_option_with_a_line_and_its_default():
    from servers.config import build_parser

    done = subprocess.run([sys.executable, "-m", "servers", "--help"], capture_output=True,
                          text=True, timeout=scaled(20), check=True)
    text = " ".join(done.stdout.split())  # argparse wraps lines
    for action in build_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{action.option_strings[0]} has no help line"
        assert action.option_strings[-1] in text
        assert " ".join(action.help.split()) in text  # its own line is shown
    defaults = re.findall(r"\(default: [^)]+\)", text)
    assert len(defaults) == len([a for a in build_parser()._actions
                                 if a.option_strings and a.dest != "help"])
