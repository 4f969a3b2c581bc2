"""The gateway-limits job done with vibecode-b24-bot's ``VibeCode`` (runs in the peer's venv).

Not imported by anything: ``gateway_limits.py`` runs it with the peer virtualenv's Python, so
this file uses only the standard library and ``vibecode_b24_bot``. Prints one JSON object.

    BITRIX_MAIL_API_KEY=... python _peer_limits_job.py SPEC_JSON

SPEC_JSON: ``{"base_url", "plan": [[message_id, subject or null], ...], "sender", "recipient",
"passes", "deadline"}``. One task per plan entry, all gathered at once (the natural asyncio bulk
job): ``get_entity("mail/messages", id)`` (GET /mail/messages/{id}), then, when the entry has a
subject, ``post("/mail/messages", from=..., to=..., subject=..., body=...)`` (the peer has no
mail methods; its generic ``post`` makes the same request). Each call's outcome is kept on its
own: a failed get does not stop the task's send. Calls that raised run again in further passes
(up to ``passes``), the way ``_peer_job.py`` finishes its job; pass 1 alone is one run of the
job. Calls still running at ``deadline`` seconds are cancelled and counted as lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections import Counter
from typing import Any

from vibecode_b24_bot import VibeCode

logging.disable(logging.WARNING)  # the client logs a warning per 429

Op = tuple[str, Any]  # ("get", message_id) or ("send", subject)


def error_name(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}({code})" if code else type(exc).__name__


async def do_op(client: Any, spec: dict[str, Any], op: Op) -> None:
    kind, value = op
    if kind == "get":
        data = await client.get_entity("mail/messages", value)
        item = data.get("item", data) if isinstance(data, dict) else None
        if not isinstance(item, dict) or item.get("id") != value:
            raise RuntimeError(f"unexpected answer for {value}: {str(data)[:80]}")
        return
    # "from" is a Python keyword: the body goes in as a mapping.
    body = {"from": spec["sender"], "to": [spec["recipient"]], "subject": value, "body": "."}
    data = await client.post("/mail/messages", **body)
    if not isinstance(data, dict) or not data.get("success"):
        raise RuntimeError(f"unexpected answer for {value}: {str(data)[:80]}")


async def run_task(client: Any, spec: dict[str, Any], ops: list[Op], out: dict[Op, str]) -> None:
    for op in ops:
        try:
            await do_op(client, spec, op)
            out[op] = "ok"
        except Exception as exc:
            out[op] = error_name(exc)


async def one_pass(
    client: Any, spec: dict[str, Any], todo: list[list[Op]], timeout: float
) -> tuple[dict[Op, str], int]:
    """Run every task of ``todo`` at once; return the outcomes and how many calls never ended."""
    out: dict[Op, str] = {}
    tasks = [asyncio.ensure_future(run_task(client, spec, ops, out)) for ops in todo]
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    calls = sum(len(ops) for ops in todo)
    return out, calls - len(out)


async def main(spec: dict[str, Any], key: str) -> None:
    todo: list[list[Op]] = [
        [("get", mid), *([("send", subject)] if subject else [])] for mid, subject in spec["plan"]
    ]
    result: dict[str, Any] = {"passes": [], "ok_sends": [], "lost": 0}
    started = time.perf_counter()
    async with VibeCode(api_key=key, base_url=spec["base_url"]) as client:
        for _ in range(spec["passes"]):
            t0 = time.perf_counter()
            left = spec["deadline"] - (t0 - started)
            out, lost = await one_pass(client, spec, todo, left)
            raised = Counter(v for v in out.values() if v != "ok")
            result["passes"].append(
                {
                    "calls": sum(len(ops) for ops in todo),
                    "raised": dict(raised),
                    "lost": lost,
                    "elapsed": time.perf_counter() - t0,
                }
            )
            result["ok_sends"] += [op[1] for op, v in out.items() if op[0] == "send" and v == "ok"]
            result["lost"] = lost
            todo = [rest for ops in todo if (rest := [op for op in ops if out.get(op) != "ok"])]
            if not todo or lost:
                break
    result["elapsed"] = time.perf_counter() - started
    result["not_done"] = sum(len(ops) for ops in todo)
    result["raised_sends"] = [op[1] for ops in todo for op in ops if op[0] == "send"]
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), os.environ["BITRIX_MAIL_API_KEY"]))
