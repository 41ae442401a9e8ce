"""Network emulation between subscribers and server: a delaying TCP proxy, or netem.

The RFC 6202 claims are about network transits, which loopback does not have.
:func:`open_network_path` puts one-way delay (plus jitter, bandwidth, a loss
stall model) in front of the server and reports what it really added; see
docs/network.md.
"""

from .link import LinkConfig
from .netns import NetemSupport, detect_netem
from .path import NetworkPath, open_network_path

__all__ = ["LinkConfig", "NetemSupport", "NetworkPath", "detect_netem", "open_network_path"]
