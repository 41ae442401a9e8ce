"""The message broker behind multi-worker servers (``python -m servers --workers N --broker redis``).

A server past one process needs somewhere to fan out through: its workers
publish to Redis and read back what every worker published
(servers/broker.py). This package is the harness's side of it: the Redis
process a run starts (:mod:`.redis`) and reading the workers' broker figures
from ``/metrics`` (:mod:`.scrape`).
"""

from .redis import RedisError, RedisMissing, RedisProcess, redis_version
from .scrape import Histogram, WorkerMetrics, histogram_quantile, scrape_workers

__all__ = [
    "Histogram",
    "RedisError",
    "RedisMissing",
    "RedisProcess",
    "WorkerMetrics",
    "histogram_quantile",
    "redis_version",
    "scrape_workers",
]
