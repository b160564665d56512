"""Tidemark's Python SDK: the `tidemark:task` world (wit/task.wit) as plain
Python. componentize-py generates `wit_world` from the same WIT files as the
Rust SDK; this module only makes it pleasant, the way `tidemark-sdk` does
for Rust:

    import tidemark

    def run(ctx: tidemark.Context) -> str:
        rows = tidemark.Dataset("events")
        n = sum(1 for _ in rows.scan_window(ctx.window))
        if n == 0:
            raise tidemark.Retryable("no events yet")
        tidemark.info(f"{n} events")
        return f"{n} events"

    WitWorld = tidemark.world(run)

Returning a string succeeds with it as the summary. `Retryable` and `Fatal`
fail the attempt as `task-error`s; any other exception is a trap (the
attempt fails with `guest trap`), exactly like a panic in Rust.
"""

import json
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import wit_world
from componentize_py_types import Err
from wit_world.imports import checkpoint, dataset, log, types

# Matches the host's cap per scan call; fewer round trips for large windows.
_SCAN_PAGE = 1000


class Retryable(Exception):
    """A transient failure: the attempt may be retried."""


class Fatal(Exception):
    """A permanent failure: retrying cannot help."""


@dataclass(frozen=True)
class Window:
    """The half-open interval [start, end) in UTC milliseconds."""

    start: int
    end: int
    timezone: str

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


class Context:
    """Everything the task knows about this attempt."""

    def __init__(self, raw: types.Context):
        self.tenant: str = raw.tenant
        self.workflow: str = raw.workflow
        self.task: str = raw.task
        self.run_id: str = raw.run_id
        self.window = Window(raw.window.start, raw.window.end, raw.window.timezone)
        self.attempt: int = raw.attempt
        self.trigger: str = raw.trigger.name.lower()
        self.params: dict = dict(raw.params)
        self.payload: bytes = bytes(raw.payload)

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.params.get(name, default)


@dataclass(frozen=True)
class Entry:
    partition: int
    key: str
    value: bytes

    def json(self):
        return json.loads(self.value)


class Dataset:
    """A tenant-scoped, window-partitioned dataset. Writes are staged and
    committed only if the attempt succeeds; reads see committed data."""

    def __init__(self, name: str):
        self.name = name

    def put(self, key: str, value) -> None:
        if isinstance(value, str):
            value = value.encode()
        dataset.put(self.name, key, bytes(value))

    def put_json(self, key: str, value) -> None:
        # Compact separators: the same bytes serde_json writes, so Python
        # and Rust tasks produce identical datasets.
        self.put(key, json.dumps(value, separators=(",", ":")))

    def get(self, partition: int, key: str) -> Optional[bytes]:
        return dataset.get(self.name, partition, key)

    def scan(self, since: int, until: int, prefix: str = "") -> Iterator[Entry]:
        after = None
        while True:
            page = dataset.scan(self.name, since, until, prefix, after, _SCAN_PAGE)
            for e in page.entries:
                yield Entry(e.partition, e.key, bytes(e.value))
            if page.next is None:
                return
            after = page.next

    def scan_window(self, window: Window, prefix: str = "") -> Iterator[Entry]:
        """The entries of the partition of `window` (whose start it is)."""
        return self.scan(window.start, window.start + 1, prefix)


def _log(level, message: str) -> None:
    log.write(level, message)


def trace(message: str) -> None:
    _log(log.Level.TRACE, message)


def debug(message: str) -> None:
    _log(log.Level.DEBUG, message)


def info(message: str) -> None:
    _log(log.Level.INFO, message)


def warn(message: str) -> None:
    _log(log.Level.WARN, message)


def error(message: str) -> None:
    _log(log.Level.ERROR, message)


def save_checkpoint(data: bytes) -> None:
    checkpoint.save(bytes(data))


def load_checkpoint() -> Optional[bytes]:
    return checkpoint.load()


def clear_checkpoint() -> None:
    checkpoint.clear()


def _task_error(e: Exception):
    """Exceptions the SDK maps to `task-error`; None for a trap."""
    if isinstance(e, Retryable):
        return types.TaskError_Retryable(str(e))
    if isinstance(e, Fatal):
        return types.TaskError_Fatal(str(e))
    if isinstance(e, Err):
        # A refused host call, e.g. a dataset error, as the Rust SDK maps it.
        v = e.value
        if isinstance(v, dataset.DatasetError_InvalidName):
            return types.TaskError_Fatal(f"invalid dataset name: {v.value}")
        if isinstance(v, dataset.DatasetError_Unavailable):
            return types.TaskError_Retryable(f"dataset unavailable: {v.value}")
        if isinstance(v, str):
            return types.TaskError_Fatal(v)
    return None


def world(run: Callable[[Context], str]):
    """The class componentize-py exports (`WitWorld = tidemark.world(run)`)."""

    class _World(wit_world.WitWorld):
        def run(self, ctx: types.Context) -> types.Outcome:
            try:
                summary = run(Context(ctx))
            except Exception as e:
                mapped = _task_error(e)
                if mapped is None:
                    raise
                raise Err(mapped)
            return types.Outcome(summary if summary is not None else "")

    return _World
