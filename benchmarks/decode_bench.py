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


if __name__ == "__main__":
    main()
