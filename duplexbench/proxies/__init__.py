"""Intermediaries in the measured path: a real nginx between subscribers and server.

:mod:`.options` parses a scenario's ``[proxy]`` table and expands its sweep,
:mod:`.nginx` generates the config and runs the process, :mod:`.point` is what
the runner opens per load point (docs/proxy.md).
"""

from ..scenario.proxy import ProxyOptions, parse_proxy, proxy_variants
from .nginx import NginxError, NginxProxy, NginxSettings, find_nginx, nginx_config

__all__ = ["NginxError", "NginxProxy", "NginxSettings", "ProxyOptions", "find_nginx",
           "nginx_config", "parse_proxy", "proxy_variants"]
