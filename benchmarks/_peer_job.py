"""The bulk job done with vibecode-b24-bot's ``VibeCode`` client (runs in the peer's venv).

Not imported by anything: ``peer_bulk.py`` runs it with the peer virtualenv's Python, so this
file uses only the standard library and ``vibecode_b24_bot``. Prints one JSON object.

    python _peer_job.py BASE_URL API_KEY FIRST_ID COUNT MODE [MAX_PASSES]

MODE ``gather``: every id concurrently (``asyncio.gather``), the natural asyncio bulk job; ids
that failed are fetched again in further passes (up to MAX_PASSES) until all are done.
MODE ``sequential``: one id after the other (what a careful user of a client without a rate
limiter might do).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from vibecode_b24_bot import VibeCode

logging.disable(logging.WARNING)  # the client logs a warning per 429


async def fetch(client: Any, message_id: int) -> bool:
    # The client has no mail methods; get_entity("mail/messages", id) is GET /mail/messages/{id}.
    data = await client.get_entity("mail/messages", message_id)
    item = data.get("item", data) if isinstance(data, dict) else None
    if not isinstance(item, dict) or item.get("id") != message_id:
        raise RuntimeError(f"unexpected answer for {message_id}: {str(data)[:80]}")
    return True


async def main(base_url: str, key: str, first: int, count: int, mode: str, passes: int) -> None:
    ids = list(range(first, first + count))
    result: dict[str, Any] = {"mode": mode, "passes": []}
    started = time.perf_counter()
    async with VibeCode(api_key=key, base_url=base_url) as client:
        if mode == "sequential":
            failed = []
            for message_id in ids:
                try:
                    await fetch(client, message_id)
                except Exception as exc:
                    failed.append((message_id, repr(exc)[:100]))
            result["passes"].append(
                {
                    "ids": count,
                    "failures": len(failed),
                    "elapsed": time.perf_counter() - started,
                    "examples": sorted({e for _, e in failed})[:3],
                }
            )
            todo = [i for i, _ in failed]
        else:
            todo = ids
            for _ in range(passes):
                t0 = time.perf_counter()
                outcomes = await asyncio.gather(
                    *(fetch(client, i) for i in todo), return_exceptions=True
                )
                failed_ids = [i for i, o in zip(todo, outcomes, strict=True) if o is not True]
                errors = {repr(o)[:100] for o in outcomes if o is not True}
                result["passes"].append(
                    {
                        "ids": len(todo),
                        "failures": len(failed_ids),
                        "elapsed": time.perf_counter() - t0,
                        "examples": sorted(errors)[:3],
                    }
                )
                todo = failed_ids
                if not todo:
                    break
    result["elapsed"] = time.perf_counter() - started
    result["not_done"] = len(todo)
    print(json.dumps(result))


if __name__ == "__main__":
    base_url, key, first, count, mode = sys.argv[1:6]
    max_passes = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    asyncio.run(main(base_url, key, int(first), int(count), mode, max_passes))
