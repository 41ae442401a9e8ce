"""netem detection answers with a reason, and a path falls back to the proxy instead of failing."""

from __future__ import annotations

import warnings

from duplexbench.netem import detect_netem, open_network_path
from duplexbench.netem.calibrate import EchoServer, echo_rtts_ms


def test_detection_gives_a_clear_answer():
    support = detect_netem(refresh=True)
    if support.available:
        assert support.reason == "available"
    else:
        assert support.reason.startswith("unavailable: ")
        assert len(support.reason) > len("unavailable: ") + 10


def test_netem_mode_falls_back_to_the_proxy_with_a_warning():
    support = detect_netem()
    with EchoServer() as echo, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        url = "http://%s:%d" % echo.address
        with open_network_path({"mode": "netem"}, 5, url, calibrate=False) as path:
            host, port = path.url.removeprefix("http://").split(":")
            rtts = echo_rtts_ms((host, int(port)), count=3)
            info = path.info
    assert info["requested_mode"] == "netem"
    assert info["netem"]["reason"] == support.reason
    if not support.available:
        assert info["mode"] == "proxy"
        assert any("unavailable" in w and "proxy" in w for w in info["warnings"])
    assert min(rtts) >= 9.0


def test_path_info_records_calibration():
    with EchoServer() as echo:
        with open_network_path(None, 10, "http://%s:%d" % echo.address) as path:
            info = path.info
    cal = info["calibration"]
    assert info["mode"] == "proxy" and info["delay_ms"] == 10 and info["rtt_ms"] == 20
    assert abs(cal["measured_one_way_p50_ms"] - 10) < 3
    assert 0 <= cal["proxy_added_one_way_p50_ms"] < 2
    assert "proxy_stats" in info
