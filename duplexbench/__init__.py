"""duplexbench: measure long polling, HTTP streaming and WebSocket side by side."""

__all__ = ["__version__", "SCHEMA_VERSION"]

__version__ = "0.1.0"

#: Version of the results format (meta.json, summary.csv, samples, load series).
#: Bump when a column changes meaning; adding columns does not need a bump.
SCHEMA_VERSION = 2
