"""The point extensions a run uses, in the order their hooks run (docs/DESIGN.md, "Extending a point").

Every command that measures points (run, capacity, ab, stacks) builds its list
here, so a new kind of thing a point can have is added in one place:

- ``server`` (runner/outside.py): where the server comes from (spawned, TLS,
  outside): the ``tls`` and ``server_measured`` columns; opens before the server;
- ``workers`` (broker/extension.py): workers behind Redis (``[server] workers``,
  ``broker``): Redis per point, opened before the server; the ``workers`` and
  ``broker`` columns, the broker's CPU and the latency split at the broker;
- ``http`` (http2/extension.py): the point's HTTP version and server stack (docs/http2.md):
  the Node reference's HTTP/2 flags and h2c URL, the ``http`` / ``stack`` columns;
- ``engine`` (engines/extension.py): the browser engine's command, the ``engine``
  column and the browser's notes;
- ``network`` (netem/extension.py): the emulated network in the subscribers' path;
- ``proxy`` (proxies/extension.py): nginx in the subscribers' path;
- ``faults`` (faults/extension.py): restarts and cuts during the point; opens last,
  since a cut needs the path.

The order is also the order of the row's columns and notes.
"""

from __future__ import annotations

from typing import Any

from .broker.extension import WorkersExtension
from .engines.extension import EngineExtension
from .faults.extension import FaultsExtension
from .http2.extension import HttpExtension
from .netem.extension import NetworkExtension
from .proxies.extension import NginxExtension
from .runner.extension import PointExtension

__all__ = ["point_extensions"]


def point_extensions(scenario: Any, *, engine: str = "native",
                     server: PointExtension | None = None) -> list[PointExtension]:
    """The extensions for ``scenario``'s points; ``server`` is the run's server setup
    (runner/outside.py), None where the command records no server columns (ab, stacks)."""
    extensions: list[PointExtension] = [] if server is None else [server]
    extensions += [WorkersExtension(scenario),
                   HttpExtension(outside_rfc8441=bool(getattr(server, "rfc8441", False))),
                   EngineExtension(engine, scenario.engine_options), NetworkExtension(),
                   NginxExtension()]
    if scenario.faults is not None:
        extensions.append(FaultsExtension(scenario.faults))
    return extensions
