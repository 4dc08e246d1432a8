"""miniplane's shared client library: HTTP client, typed errors, informers, work queues.

Import from here (``from client import AsyncClient, Informer, WorkQueue``); the
submodules hold the details and their docstrings the contracts.
"""

from apimachinery.keys import make_key, object_key, split_key
from apimachinery.kinds import Kind
from client.backoff import Backoff
from client.config import (
    ClientConfig,
    ConfigError,
    ServerFlagError,
    load_config,
    parse_servers,
    write_kubeconfig,
)
from client.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Expired,
    Forbidden,
    Invalid,
    MethodNotAllowed,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    error_from_response,
    is_retriable,
)
from client.http import AsyncClient, Client
from client.informer import Informer
from client.store import Store
from client.watch import Listed, list_then_watch, watch_forever
from client.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    FakeClock,
    ItemExponentialRateLimiter,
    MaxOfRateLimiter,
    MonotonicClock,
    Queue,
    RateLimiter,
    ShutDown,
    WorkQueue,
    run_worker,
)

__all__ = [
    "AlreadyExists",
    "ApiError",
    "AsyncClient",
    "Backoff",
    "BadRequest",
    "BucketRateLimiter",
    "Client",
    "ClientConfig",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "DelayingQueue",
    "Expired",
    "FakeClock",
    "Forbidden",
    "Informer",
    "Invalid",
    "ItemExponentialRateLimiter",
    "Kind",
    "Listed",
    "MaxOfRateLimiter",
    "MethodNotAllowed",
    "MonotonicClock",
    "NotFound",
    "Queue",
    "RateLimiter",
    "ServerError",
    "ServerFlagError",
    "ShutDown",
    "Store",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "WorkQueue",
    "error_from_response",
    "is_retriable",
    "list_then_watch",
    "load_config",
    "make_key",
    "object_key",
    "parse_servers",
    "run_worker",
    "split_key",
    "watch_forever",
    "write_kubeconfig",
]
