"""Scenarios: the shared workload, from ``scenarios/*.toml`` to load points.

- :mod:`~duplexbench.scenario.load`: :class:`Scenario`, :func:`load_scenario`, validation;
- :mod:`~duplexbench.scenario.options`: the tables' options and the vocabularies;
- :mod:`~duplexbench.scenario.loadpoint`: :class:`LoadPoint`, one measurement;
- :mod:`~duplexbench.scenario.check`: how a TOML value is checked (``ScenarioError``);
- :mod:`~duplexbench.scenario.proxy`, :mod:`~duplexbench.scenario.faults`: the
  ``[proxy]`` and ``[faults]`` tables.

The public names are re-exported here: ``from duplexbench.scenario import load_scenario``.
"""

from .check import ScenarioError
from .load import Scenario, load_scenario, parse_scenario
from .loadpoint import LoadPoint
from .options import (
    ARRIVALS,
    BROKERS,
    ENGINE_TRANSPORTS,
    ENGINES,
    NETWORK_MODES,
    PATTERNS,
    TRANSPORTS,
    UPSTREAMS,
    WEB_TRANSPORTS,
    LongPollOptions,
    NetworkOptions,
    ServerOptions,
)

__all__ = [
    "ARRIVALS",
    "BROKERS",
    "ENGINE_TRANSPORTS",
    "ENGINES",
    "NETWORK_MODES",
    "PATTERNS",
    "TRANSPORTS",
    "UPSTREAMS",
    "WEB_TRANSPORTS",
    "LoadPoint",
    "LongPollOptions",
    "NetworkOptions",
    "Scenario",
    "ScenarioError",
    "ServerOptions",
    "load_scenario",
    "parse_scenario",
]
