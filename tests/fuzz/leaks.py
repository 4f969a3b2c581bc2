"""Where a secret is reachable from an exception, and by which path.

Two views. :func:`printed_leaks` is what a traceback printer shows:
``traceback.TracebackException(exc, capture_locals=True)`` formatted, with every chained
exception, even those the printer would hide. :func:`reachable_leaks` walks the live objects:
the exception's text, args and attributes, its ``__cause__``/``__context__``, every frame of
its traceback (``f_locals``) and, from there, containers and objects' ``__dict__``/slots to a
bounded depth, following any exception met on the way the same way.

The walk does not enter what must hold the key or cannot be a leak of this call: the client's
:class:`~bitrix_mail_async._transport.Transport` (the key lives in it by design; its ``repr`` is
checked instead), event loops, tasks and futures (they reach every other coroutine of the
loop, the test's server among them), functions, classes and modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import types
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from traceback import TracebackException
from typing import Any

from bitrix_mail_async._credentials import Credentials
from bitrix_mail_async._transport import Transport

__all__ = ["caller_ids", "printed_leaks", "reachable_leaks"]

MAX_DEPTH = 8
MAX_NODES = 60_000
MAX_ITEMS = 2_000
MAX_REPR = 20_000

_ATOMS = (int, float, complex, bool, type(None))
_OPAQUE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    asyncio.AbstractEventLoop,
    asyncio.Future,
    weakref.ref,
    type(threading.Lock()),
    threading.Thread,
    Transport,
    # The headers' one holder (a Request carries it); its repr is redacted like Transport's.
    Credentials,
)


def _texts(secrets: Iterable[str]) -> list[tuple[str, bytes]]:
    return [(s, s.encode()) for s in secrets]


def caller_ids(*values: Any) -> frozenset[int]:
    """Ids of the caller's own arguments and everything they contain (iteratively, bounded).

    A local of the library may be one of them; if its ``repr()`` fails (a 5,000-deep list),
    that is the caller's doing, not a fault of the library.
    """
    ids: set[int] = set()
    todo = list(values)
    while todo and len(ids) < MAX_NODES:
        value = todo.pop()
        if id(value) in ids:
            continue
        ids.add(id(value))
        if isinstance(value, Mapping):
            todo += [*value.keys(), *value.values()]
        elif isinstance(value, _SEQUENCES):
            todo += list(value)
    return frozenset(ids)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception chained to it, suppressed contexts included."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        yield one
        todo += [e for e in (one.__cause__, one.__context__) if e is not None]


@contextlib.contextmanager
def _any_int_prints() -> Iterator[None]:
    # A caller's own argument may be an int too long for str() (10**5000): that is no fault
    # of the library, so the printer may print it here.
    digits = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(digits)


def printed_leaks(
    exc: BaseException, secrets: Iterable[str], exempt: frozenset[int] = frozenset()
) -> list[str]:
    """What a traceback printer with locals would show of a secret, or fail to print.

    The formatted ``TracebackException(capture_locals=True)`` is checked, and, since it stops
    at the first local it cannot print, every local of every frame of every chained
    exception is checked by its own ``repr()``; one that cannot be printed (and is not one of
    the caller's ``exempt`` arguments) is reported too: a report of the error would fail.
    """
    wanted = _texts(secrets)
    found: list[str] = []
    with _any_int_prints():
        try:
            te = TracebackException(type(exc), exc, exc.__traceback__, capture_locals=True)
            formatted = "".join(te.format())
        except Exception:
            formatted = ""  # the locals are checked one by one below
        found += [f"formatted traceback shows {s[:12]}..." for s, _ in wanted if s in formatted]
        for one in _chain(exc):
            tb = one.__traceback__
            while tb is not None:
                found += _frame_leaks(tb.tb_frame, wanted, exempt)
                tb = tb.tb_next
    return found


def _frame_leaks(
    frame: types.FrameType, wanted: list[tuple[str, bytes]], exempt: frozenset[int]
) -> list[str]:
    found = []
    where = f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 1)[-1]})"
    for name, value in dict(frame.f_locals).items():
        try:
            shown = repr(value)
        except Exception as failed:
            if id(value) not in exempt:
                found.append(f"local {name} of {where} cannot be printed: {failed!r:.120}")
            continue
        found += [f"local {name} of {where} shows {s[:12]}..." for s, _ in wanted if s in shown]
    return found


_GENERATORS = (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)
_SEQUENCES = (list, tuple, set, frozenset, deque)


def _slot_names(cls: type) -> list[str]:
    slots = cls.__dict__.get("__slots__", ())
    names = (slots,) if isinstance(slots, str) else tuple(slots)
    return [name for name in names if name not in ("__dict__", "__weakref__")]


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    """(label, value) of what ``obj`` refers to, as far as the walk goes."""
    if isinstance(obj, Mapping):
        for i, (key, value) in enumerate(obj.items()):
            if i >= MAX_ITEMS:
                return
            yield f"[{key!r:.40}]", value
            yield f"<key {i}>", key
        return
    if isinstance(obj, _SEQUENCES):
        for i, value in enumerate(obj):
            if i >= MAX_ITEMS:
                return
            yield f"[{i}]", value
        return
    if isinstance(obj, _GENERATORS):
        # A suspended coroutine's frame holds its locals as a finished frame does.
        for attr in ("cr_frame", "gi_frame", "ag_frame"):
            frame = getattr(obj, attr, None)
            if frame is not None:
                yield f".{attr}", frame
        return
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):
        yield from ((f".{name}", value) for name, value in list(state.items()))
    for cls in type(obj).__mro__:
        for name in _slot_names(cls):
            try:
                yield f".{name}", getattr(obj, name)
            except Exception:  # an unset slot
                continue


def _exception_children(exc: BaseException) -> Iterator[tuple[str, Any]]:
    yield ".args", exc.args
    yield ".__dict__", dict(vars(exc))
    yield ".__cause__", exc.__cause__
    yield ".__context__", exc.__context__
    tb = exc.__traceback__
    while tb is not None:
        yield f".tb<{tb.tb_frame.f_code.co_name}:{tb.tb_lineno}>", tb.tb_frame
        tb = tb.tb_next


def reachable_leaks(exc: BaseException, secrets: Iterable[str]) -> list[str]:
    """Paths from ``exc`` to a string or bytes holding a secret (see the module docstring)."""
    wanted = _texts(secrets)
    found: list[str] = []
    seen: set[int] = set()
    keep: list[Any] = []  # ids stay unique while the walk runs
    queue: deque[tuple[Any, str, int]] = deque([(exc, "exc", 0)])
    nodes = 0
    while queue and nodes < MAX_NODES:
        obj, path, depth = queue.popleft()
        if isinstance(obj, _ATOMS):
            continue
        if isinstance(obj, str):
            found += [f"{path} (str)" for s, _ in wanted if s in obj]
            continue
        if isinstance(obj, bytes | bytearray | memoryview):
            data = bytes(obj[: 1 << 22])
            found += [f"{path} (bytes)" for _, b in wanted if b in data]
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        keep.append(obj)
        nodes += 1
        if isinstance(obj, BaseException | types.FrameType):
            depth = 0  # a new root: its own frames and attributes
        if not isinstance(obj, (Mapping, *_SEQUENCES)):
            found += _repr_leaks(obj, path, wanted)
        if isinstance(obj, _OPAQUE) or depth >= MAX_DEPTH:
            continue
        if isinstance(obj, BaseException):
            found += [f"{path} str()" for s, _ in wanted if s in _safe(str, obj)]
            children: Iterable[tuple[str, Any]] = _exception_children(obj)
        elif isinstance(obj, types.FrameType):
            name = obj.f_code.co_name
            children = ((f"<{name}>.{k}", v) for k, v in dict(obj.f_locals).items())
        else:
            children = _children(obj)
        for label, child in children:
            queue.append((child, path + label, depth + 1))
    return found


def _safe(fn: Any, obj: Any) -> str:
    try:
        text = fn(obj)
    except Exception:
        return ""
    return text[:MAX_REPR] if isinstance(text, str) else ""


def _repr_leaks(obj: Any, path: str, wanted: list[tuple[str, bytes]]) -> list[str]:
    shown = _safe(repr, obj)
    return [f"{path} repr()" for s, _ in wanted if s in shown]
