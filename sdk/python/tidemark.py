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

Object storage: `Container("lake")` is the object-storage connection
(`s3` or `fs`) the workflow names; what an attempt writes becomes the
window's output when the attempt succeeds.

Outbound HTTP (`http_get`, `http_request`) needs the `task-with-http` world
(`componentize-py -d wit -w task-with-http ...`), which adds
`wasi:http/outgoing-handler` to `task`; an `HttpError` that escapes `run`
fails the attempt as a task error (retryable when transient).
"""

import json
import re
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import blobstore, checkpoint, dataset, log

try:
    from wit_world.imports import types
except ImportError:
    # In `task-with-http`, wasi:http has a `types` interface too, and
    # componentize-py names both modules after their packages.
    from wit_world.imports import tidemark_task_types as types

# wasi:http, in the `task-with-http` world only. Imported here, not when
# first used: componentize-py snapshots the modules imported at build time.
try:
    from wit_world.imports import outgoing_handler as _outgoing
    from wit_world.imports import wasi_http_types as _h
except ImportError:
    _outgoing = _h = None

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


@dataclass(frozen=True)
class ObjectInfo:
    """One object as listed: `name` relative to the container's root,
    `modified` in ms since the epoch when the store says."""

    name: str
    size: int
    modified: Optional[int]


@dataclass(frozen=True)
class OutputObject:
    """One object of a published window output: `key` is where it is
    stored (pass it to `Container.read`)."""

    name: str
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PublishedOutput:
    run_id: str
    attempt: int
    committed_at: int
    objects: List[OutputObject]


# `get-data` clamps `end` to the object's size.
_U64_MAX = (1 << 64) - 1
_LIST_PAGE = 1000


def _blob_error(v) -> Exception:
    """A `blob-error` as the Rust SDK maps it: `unavailable` may be retried,
    everything else is fatal."""
    if isinstance(v, blobstore.BlobError_Unavailable):
        return Retryable(v.value)
    return Fatal(getattr(v, "value", repr(v)))


def _blob(call, *args):
    try:
        return call(*args)
    except Err as e:
        raise _blob_error(e.value) from None


def _info(m) -> ObjectInfo:
    return ObjectInfo(m.name, m.size, m.created_at)


class Container:
    """A container: a connection of kind `s3` or `fs` that the workflow
    names in `connections`.

        lake = tidemark.Container("lake")
        lake.write("part-0.jsonl", b'{"n":1}\n')    # this window's output
        data = lake.read("raw/2026-01-01.json")    # anything in the bucket

    What this attempt writes becomes the window's output only when the
    attempt succeeds, replacing the previous output as a whole. Refused
    calls raise `Retryable` (storage unavailable) or `Fatal` (anything
    else)."""

    def __init__(self, name: str):
        self.name = name

    def write(self, name: str, data) -> None:
        """Stages one object of this window's output (str is UTF-8)."""
        if isinstance(data, str):
            data = data.encode()
        _blob(blobstore.write_data, self.name, name, bytes(data))

    def read(self, name: str) -> bytes:
        """The whole object."""
        return self.read_range(name, 0, _U64_MAX)

    def read_range(self, name: str, start: int, end: int) -> bytes:
        """Bytes `[start, end)` of an object."""
        return bytes(_blob(blobstore.get_data, self.name, name, start, end))

    def info(self, name: str) -> Optional[ObjectInfo]:
        """The object's size and time; None if there is no such object."""
        try:
            return _info(blobstore.object_info(self.name, name))
        except Err as e:
            if isinstance(e.value, blobstore.BlobError_NotFound):
                return None
            raise _blob_error(e.value) from None

    def list(self, prefix: str = "") -> List[ObjectInfo]:
        """Every object whose name starts with `prefix`, in name order."""
        out: List[ObjectInfo] = []
        after = None
        while True:
            page = _blob(
                blobstore.list_objects, self.name, prefix, after, _LIST_PAGE
            )
            out.extend(_info(m) for m in page.objects)
            if page.next is None:
                return out
            after = page.next

    def discard(self, name: str) -> None:
        """Drops an object this attempt wrote from its output."""
        _blob(blobstore.delete_object, self.name, name)

    def output(
        self, workflow: str, task: str, window_start: int
    ) -> Optional[PublishedOutput]:
        """The published output of `task` of `workflow` for the window that
        starts at `window_start` (ms), as committed; None if none."""
        o = _blob(blobstore.window_output, self.name, workflow, task, window_start)
        if o is None:
            return None
        return PublishedOutput(
            o.run_id,
            o.attempt,
            o.committed_at,
            [OutputObject(x.name, x.key, x.size, x.sha256) for x in o.objects],
        )

    def read_output(
        self, workflow: str, task: str, window_start: int
    ) -> List[Tuple[str, bytes]]:
        """The objects of a published window output, `(name, bytes)`, in
        name order; empty if that window published nothing here."""
        o = self.output(workflow, task, window_start)
        if o is None:
            return []
        return [(x.name, self.read(x.key)) for x in o.objects]


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


class HttpError(Exception):
    """A request that produced no usable response.

    `code` is the `wasi:http` error-code's WIT name, e.g.
    `HTTP-request-denied` when the egress policy refused the host (the same
    name the Rust and JavaScript SDKs report), `invalid-request` for a URL
    or header refused before sending, or `status` for
    `Response.raise_for_status` (`status` is the HTTP status then).
    """

    def __init__(self, code: str, detail: str = "", status: Optional[int] = None):
        self.code = code
        self.detail = detail
        self.status = status
        if status is not None:
            message = f"HTTP status {status}"
        else:
            message = f"{code} ({detail})" if detail else code
        super().__init__(message)

    @property
    def denied(self) -> bool:
        """Whether the egress policy refused the request."""
        return self.code == "HTTP-request-denied"

    @property
    def transient(self) -> bool:
        """Whether a later attempt may succeed (timeouts, refused or dropped
        connections, 429 and 5xx statuses)."""
        if self.status is not None:
            return self.status == 429 or self.status >= 500
        return self.code in _TRANSIENT


_TRANSIENT = {
    "DNS-timeout",
    "destination-unavailable",
    "connection-refused",
    "connection-terminated",
    "connection-timeout",
    "connection-read-timeout",
    "connection-write-timeout",
    "HTTP-response-incomplete",
    "HTTP-response-timeout",
}


@dataclass(frozen=True)
class Response:
    """A complete HTTP response; header names are lower case."""

    status: int
    headers: List[Tuple[str, bytes]]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v.decode(errors="replace")
        return None

    def text(self) -> str:
        return self.body.decode()

    def json(self):
        return json.loads(self.body)

    def raise_for_status(self) -> "Response":
        if not self.ok:
            raise HttpError("status", status=self.status)
        return self


def _code_name(code) -> str:
    """`ErrorCode_HttpRequestDenied` -> `HTTP-request-denied`."""
    words = re.findall("[A-Z][a-z]*", type(code).__name__.split("_", 1)[-1])
    return "-".join(
        w.upper() if w in ("Http", "Dns", "Tls", "Ip") else w.lower() for w in words
    )


def _code_error(code) -> HttpError:
    detail = getattr(code, "value", None)
    return HttpError(_code_name(code), "" if detail is None else repr(detail))


def _http():
    if _h is None:
        raise Fatal("no wasi:http bindings: build the task with `-w task-with-http`")
    return _outgoing, _h


# A stream takes at most 4096 bytes per blocking write (wasi:io).
_WRITE_CHUNK = 4096
_READ_CHUNK = 64 * 1024


def http_get(url: str, headers: Optional[dict] = None) -> Response:
    """`GET url`; see `http_request`."""
    return http_request("GET", url, headers, None)


def http_request(
    method: str, url: str, headers: Optional[dict] = None, body=None
) -> Response:
    """Sends one request over `wasi:http` and reads the whole response,
    blocking (on `wasi:io` pollables) until it is complete. `headers` is a
    dict of names to values; a `body` (bytes or str) gets a content-length.
    Raises `HttpError` when the host refuses or fails the request."""
    outgoing_handler, h = _http()
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise HttpError("invalid-request", f"{url!r} is not an http(s) URL")
    rest = rest.split("#", 1)[0]
    m = re.match(r"([^/?]*)(.*)", rest)
    authority, path = m.group(1), m.group(2)
    if not authority:
        raise HttpError("invalid-request", f"{url!r} has no host")
    if not path.startswith("/"):
        path = "/" + path
    if isinstance(body, str):
        body = body.encode()
    fields = [(k, str(v).encode()) for k, v in (headers or {}).items()]
    if body is not None and not any(k.lower() == "content-length" for k, _ in fields):
        fields.append(("content-length", str(len(body)).encode()))
    try:
        fields = h.Fields.from_list(fields)
    except Err as e:
        raise HttpError("invalid-request", f"headers: {e.value!r}") from None
    methods = {
        "GET": h.Method_Get(),
        "HEAD": h.Method_Head(),
        "POST": h.Method_Post(),
        "PUT": h.Method_Put(),
        "DELETE": h.Method_Delete(),
        "OPTIONS": h.Method_Options(),
        "PATCH": h.Method_Patch(),
    }
    request = h.OutgoingRequest(fields)
    try:
        request.set_method(methods.get(method.upper()) or h.Method_Other(method))
        request.set_scheme(
            h.Scheme_Https() if scheme.lower() == "https" else h.Scheme_Http()
        )
        request.set_authority(authority)
        request.set_path_with_query(path)
    except Err:
        raise HttpError("invalid-request", f"{method} {url!r}") from None
    outgoing = request.body() if body is not None else None
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        if outgoing is not None:
            outgoing.__exit__(None, None, None)
        raise _code_error(e.value) from None
    if outgoing is not None:
        # Children are released before their parents: the host traps on
        # a parent dropped or finished with a live child.
        stream = outgoing.write()
        try:
            for i in range(0, len(body), _WRITE_CHUNK):
                stream.blocking_write_and_flush(body[i : i + _WRITE_CHUNK])
        except Err:
            pass  # the response reports why (e.g. a body over the quota)
        stream.__exit__(None, None, None)
        try:
            h.OutgoingBody.finish(outgoing, None)
        except Err:
            pass  # likewise
    with future:
        with future.subscribe() as ready:
            ready.block()
        got = future.get()
        if got is None or isinstance(got, Err):
            raise HttpError("internal-error", "response not ready after waiting")
        if isinstance(got.value, Err):
            raise _code_error(got.value.value)
        with got.value.value as response:
            return _read(h, response)


def _read(h, response) -> Response:
    status = response.status()
    with response.headers() as fields:
        headers = [(n, bytes(v)) for n, v in fields.entries()]
    chunks = []
    with response.consume() as incoming:
        with incoming.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(_READ_CHUNK))
                except Err as e:
                    failed = getattr(e.value, "value", None)
                    if failed is None:  # stream-error.closed: the end
                        break
                    code = h.http_error_code(failed)
                    failed.__exit__(None, None, None)
                    if code is None:
                        raise HttpError("internal-error", "reading the body") from None
                    raise _code_error(code) from None
    return Response(status, headers, b"".join(chunks))


def _task_error(e: Exception):
    """Exceptions the SDK maps to `task-error`; None for a trap."""
    if isinstance(e, Retryable):
        return types.TaskError_Retryable(str(e))
    if isinstance(e, Fatal):
        return types.TaskError_Fatal(str(e))
    if isinstance(e, HttpError):
        if e.transient:
            return types.TaskError_Retryable(str(e))
        return types.TaskError_Fatal(str(e))
    if isinstance(e, Err):
        # A refused host call, e.g. a dataset error, as the Rust SDK maps it.
        v = e.value
        if isinstance(v, dataset.DatasetError_InvalidName):
            return types.TaskError_Fatal(f"invalid dataset name: {v.value}")
        if isinstance(v, dataset.DatasetError_Unavailable):
            return types.TaskError_Retryable(f"dataset unavailable: {v.value}")
        if isinstance(v, blobstore.BlobError_Unavailable):
            return types.TaskError_Retryable(v.value)
        if type(v).__name__.startswith("BlobError_"):
            return types.TaskError_Fatal(v.value)
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
