"""The publisher's TLS follows its own URL: subscribers may reach the server through a TLS
front (nginx) while the publisher talks to the server in cleartext."""

from __future__ import annotations

from clients.spec import LoadSpec


def _spec(**fields):
    return LoadSpec(transport="sse", sub_url="https://127.0.0.1:9", clients=1, rate=1.0,
                    payload_bytes=16, **fields)


def test_cleartext_publisher_behind_a_tls_front():
    spec = _spec(pub_url="http://127.0.0.1:8")
    assert spec.ssl_context() is not None and spec.publish_ssl_context() is None


def test_publisher_on_the_same_https_url_uses_tls():
    assert _spec().publish_ssl_context() is not None
    assert _spec(pub_url="https://127.0.0.1:8").publish_ssl_context() is not None
