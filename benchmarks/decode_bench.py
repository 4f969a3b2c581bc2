"""What decoding a 50-item message page into models costs over plain ``json.loads``.

The pager decodes every page it fetches, so the converter must stay close to raw dict handling.
Four ways to handle the same page body are timed, interleaved round by round so that machine
noise hits them alike, and the medians are compared:

* ``json.loads`` only;
* ``json.loads`` plus reading every field of every item from the dicts (what code without
  models would do at least);
* ``json.loads`` plus ``structure_list(items, MessageSummary)`` (what the pager runs: the
  converter's generated straight-line decoder);
* ``json.loads`` plus the decoder cattrs generates for the same model (``cattrs_decoder``),
  the reference the generated one must beat to be worth keeping.

Then a well-formed page (the emulator's rendering, as the gateway sends it) read the way the
pager reads it, from the body bytes to a ``Page``: through the pure-Python lane, through the
msgspec fast lane (extra ``speedups``; skipped with a note when msgspec is missing), and, as
the reference, pydantic v2 ``model_validate_json`` on an equivalent model (camelCase aliases,
lenient validators, unknown keys kept; skipped with a note when pydantic is missing: it is a
benchmark-only import, ``pip install pydantic``). Target: fast lane <= 0.8x pydantic.

Run: ``python benchmarks/decode_bench.py [--rounds N] [--pages-per-round K]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from bitrix_mail_async._convert import cattrs_decoder, structure_list
from bitrix_mail_async.models import MessageSummary

PAGE_SIZE = 50


def make_page_body(size: int = PAGE_SIZE) -> str:
    """A realistic list payload: the contract's fields, some ids as strings, one unknown key."""
    items: list[dict[str, object]] = []
    for i in range(size):
        items.append(
            {
                "id": 100_000 + i if i % 2 else str(100_000 + i),
                "mailboxId": 5,
                "mailboxEmail": "team@example.com",
                "subject": f"Quarterly report #{i}",
                "from": "Anna Petrova <anna@example.com>",
                "to": "team@example.com, boss@example.com",
                "cc": None if i % 3 else '"Doe, John" <john@example.com>',
                "date": "2026-05-25T10:00:00+03:00",
                "isSeen": i % 2 == 0,
                "hasAttachments": "N",
                "url": f"https://portal.bitrix24.ru/mail/message/{100_000 + i}",
                "bindings": [],
                **({"priority": 3} if i % 10 == 0 else {}),
            }
        )
    return json.dumps({"items": items})


FIELDS = (
    *("id", "mailboxId", "mailboxEmail", "subject", "from", "to", "cc", "date"),
    *("isSeen", "hasAttachments", "url", "bindings"),
)


def loads_only(body: str) -> object:
    return json.loads(body)


def loads_and_read(body: str) -> object:
    items = json.loads(body)["items"]
    return [tuple(item.get(f) for f in FIELDS) for item in items]


def loads_and_structure(body: str) -> object:
    return structure_list(json.loads(body)["items"], MessageSummary)


_CATTRS_DECODE = cattrs_decoder(MessageSummary)


def loads_and_cattrs(body: str) -> object:
    return [_CATTRS_DECODE(item, MessageSummary) for item in json.loads(body)["items"]]


def lanes_section(rounds: int, per_round: int) -> None:
    """A well-formed page from bytes to a Page: Python lane, fast lane, pydantic."""
    from bitrix_mail_async._envelope import Answer, Call, Decoder, FastPage, decode_page, read
    from bitrix_mail_async._fastlane import AVAILABLE

    body = _emulator_page()
    call = Call("GET", "/mail/messages")
    answer = Answer(200, {}, body)
    decoder = Decoder(MessageSummary, "page")

    def python_lane() -> object:
        return decode_page(call, read(call, answer), MessageSummary, offset=0, limit=PAGE_SIZE)

    def fast_lane() -> object:
        reply = read(call, answer, decoder=decoder)
        return decode_page(call, reply, MessageSummary, offset=0, limit=PAGE_SIZE)

    contenders: dict[str, Callable[[], object]] = {"python lane": python_lane}
    if AVAILABLE:
        assert read(call, answer, decoder=decoder).parsed.__class__ is FastPage
        assert fast_lane() == python_lane()
        contenders["fast lane (msgspec)"] = fast_lane
    else:
        print(
            "  (msgspec is not installed: no fast lane; pip install 'bitrix-mail-async[speedups]')"
        )
    pydantic_page = _pydantic_reader()
    if pydantic_page is None:
        print("  (pydantic is not installed: no reference; pip install pydantic)")
    else:
        items = pydantic_page(body)
        assert len(items) == PAGE_SIZE and items[0].id == python_lane().items[0].id  # type: ignore[attr-defined]
        contenders["pydantic v2 model_validate_json"] = lambda: pydantic_page(body)
    med = _interleaved(contenders, rounds, per_round)
    print(f"well-formed {PAGE_SIZE}-item page from bytes, {len(body)} bytes")
    for name, us in med.items():
        print(f"  {name:<32} {us:8.1f} us/page")
    ref = med.get("pydantic v2 model_validate_json")
    if ref is not None:
        for name in ("python lane", "fast lane (msgspec)"):
            if name in med:
                print(f"  {name + ' / pydantic':<32} {med[name] / ref:8.2f}x")


def _emulator_page() -> bytes:
    from bitrix_mail_async.testing.state import PortalState

    state = PortalState(messages=400)
    items = [state.summary(state.messages[i]) for i in state.page_ids(1, 0, PAGE_SIZE)]
    envelope = {"success": True, "data": {"items": items}, "meta": {"total": 10_000}}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _pydantic_reader() -> Callable[[bytes], list[object]] | None:
    """pydantic's equivalent of the pager's decode, or None when pydantic is missing."""
    try:
        from pydantic import BaseModel, ConfigDict, Field, field_validator
        from pydantic.alias_generators import to_camel
    except ImportError:
        return None
    from datetime import datetime
    from typing import Any

    from bitrix_mail_async._addresses import split_recipients

    class Item(BaseModel):
        # Lax mode takes "5" for ints and "Y"/"N" for bools; extra="allow" keeps unknown keys.
        model_config = ConfigDict(alias_generator=to_camel, extra="allow", frozen=True)
        id: int
        mailbox_id: int | None = None
        mailbox_email: str | None = None
        subject: str | None = None
        from_: str | None = Field(default=None, alias="from")
        to: tuple[str, ...] = ()
        cc: tuple[str, ...] = ()
        date: datetime | None = None
        is_seen: bool | None = None
        has_attachments: bool | None = None
        url: str | None = None
        bindings: tuple[Any, ...] = ()
        body: str | None = None
        folder: str | None = None

        @field_validator("to", "cc", mode="before")
        @classmethod
        def _recipients(cls, value: Any) -> Any:
            if value is None:
                return ()
            return split_recipients(value) if isinstance(value, str) else value

    class Data(BaseModel):
        items: list[Item]

    class Envelope(BaseModel):
        success: bool
        data: Data
        meta: dict[str, Any] | None = None

    def read_page(body: bytes) -> list[object]:
        return list(Envelope.model_validate_json(body).data.items)

    return read_page


def _interleaved(
    contenders: dict[str, Callable[[], object]], rounds: int, per_round: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up
        for _ in range(per_round):
            fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            samples[name].append((time.perf_counter() - start) / per_round * 1e6)
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pages-per-round", type=int, default=100)
    args = parser.parse_args()

    body = make_page_body()
    decoded = loads_and_structure(body)
    assert isinstance(decoded, list) and len(decoded) == PAGE_SIZE
    assert loads_and_cattrs(body) == decoded

    contenders: dict[str, Callable[[str], object]] = {
        "json.loads only": loads_only,
        "json.loads + dict reads": loads_and_read,
        "json.loads + structure_list": loads_and_structure,
        "json.loads + cattrs decoder": loads_and_cattrs,
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up
        for _ in range(args.pages_per_round):
            fn(body)
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(args.pages_per_round):
                fn(body)
            samples[name].append((time.perf_counter() - start) / args.pages_per_round * 1e6)

    med: dict[str, float] = {name: statistics.median(s) for name, s in samples.items()}
    runs = f"{args.rounds} rounds x {args.pages_per_round}"
    print(f"{PAGE_SIZE}-item page, {len(body)} bytes, {runs}")
    for name, us in med.items():
        print(f"  {name:<30} {us:8.1f} us/page")
    loads = med["json.loads only"]
    reads = med["json.loads + dict reads"]
    models = med["json.loads + structure_list"]
    print(f"  decode only (models - loads)   {models - loads:8.1f} us/page")
    print(f"  ratio models / loads           {models / loads:8.2f}x")
    print(f"  ratio models / dict reads      {models / reads:8.2f}x")
    print(f"  decode per item                {(models - loads) / PAGE_SIZE:8.2f} us")
    plain = med["json.loads + cattrs decoder"]
    print("  generated vs plain cattrs decoder (same page, same run):")
    print(f"    decode only, cattrs / generated   {(plain - loads) / (models - loads):5.2f}x")
    print(f"    whole page, cattrs / generated    {plain / models:5.2f}x")
    lanes_section(args.rounds, args.pages_per_round)


if __name__ == "__main__":
    main()
