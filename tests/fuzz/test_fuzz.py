"""`python -m duplexbench fuzz` on a small budget: every area sent, no 5xx, the good client whole.

The full run (1,000 inputs per transport) is `make fuzz`; this keeps the tool
itself honest in the test suite and shows its verdicts can fail.
"""

from __future__ import annotations

import subprocess
import sys

from _timeouts import scaled

from duplexbench.fuzz import classify_answer
from duplexbench.fuzz.cases import AREAS, TRANSPORTS, generate
from duplexbench.fuzz.cases_tcp import TCP_AREAS, classify_tcp_answer


def test_cases_cover_every_transport_and_area_reproducibly():
    for transport in TRANSPORTS:
        cases = generate(transport, 60, seed=3)
        assert len(cases) == 60
        assert {c.area for c in cases} <= set(AREAS)
        assert [c.data for c in cases] == [c.data for c in generate(transport, 60, seed=3)]
    assert {c.area for c in generate("websocket", 60, 3)} == set(AREAS)
    assert {c.area for c in generate("tcp", 60, 3)} == set(TCP_AREAS)


def test_tcp_classification():
    hello = b'{"event":"hello","epoch":"e1","cursor":"e1-0"}\n'
    assert classify_tcp_answer(hello) is None and classify_tcp_answer(hello, final=True) == "ok"
    assert classify_tcp_answer(hello + b'{"error":"bad cursor","status":400}\n') == "4xx"
    assert classify_tcp_answer(b'{"error":"boom","status":500}\n') == "5xx"
    assert classify_tcp_answer(b"Traceback (most recent call last)\n") == "5xx"  # not a line of ours
    assert classify_tcp_answer(b'{"error":"too long","sta', final=True) == "ok"  # half a line: silence


def test_classification():
    assert classify_answer(b"HTTP/1.1 400 Bad Request\r\n\r\n", False) == "4xx"
    assert classify_answer(b"HTTP/1.1 500 Internal\r\n\r\n", False) == "5xx"
    assert classify_answer(b"HTTP/1.1 200 OK\r\n\r\n", False) == "ok"
    assert classify_answer(b"HTTP/1.1 200 OK\r\n", False) is None  # keep reading
    ws = b"HTTP/1.1 101 Switching\r\n\r\n"
    assert classify_answer(ws + b"\x88\x02\x03\xf3", True) == "5xx"  # close 1011: the server's fault
    assert classify_answer(ws + b"\x88\x02\x03\xf3", True, echo=1011) == "ok"  # the client's own, echoed
    assert classify_answer(ws + b"\x88\x02\x03\xf0", True) == "4xx"  # 1008
    assert classify_answer(ws, True) is None and classify_answer(ws, True, final=True) == "ok"


def test_fuzz_run_passes_on_the_server():
    done = subprocess.run(
        [sys.executable, "-m", "duplexbench", "fuzz", "--per-transport", "60", "--seconds", "40"],
        capture_output=True, text=True, timeout=scaled(90))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5xx: 0; crashes: 0" in done.stdout
    assert "got everything" in done.stdout and done.stdout.rstrip().endswith("PASS")
    assert "inputs: 360 " in done.stdout  # 6 transports, tcp's listener included
    assert "\ntcp " in done.stdout
