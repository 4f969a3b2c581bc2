"""The python blocks of README.md and docs/ run as written against the emulator.

Every block is either run here (or by the test ``readme_examples.RUN`` names) or listed in
``readme_examples.NOT_RUN`` with the reason it is not; a new block that is neither fails.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from readme_examples import (
    NOT_RUN,
    ROOT,
    RUN,
    block_with,
    doc_files,
    located_blocks,
    python_blocks,
    run_example,
)

from bitrix_mail_async import MailClient, RateLimit, RetryPolicy
from bitrix_mail_async.testing import MailEmulator


def test_readme_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    example = block_with("async with MailClient() as mail:  # key from BITRIX_MAIL_API_KEY")
    assert "README.md" in str(next(p for p, b in located_blocks() if b == example))
    done = run_example(example, mail_emulator, tmp_path)
    assert "ENTITY_NOT_FOUND" in done.stdout
    assert [(r.method, r.path) for r in mail_emulator.requests] == [
        ("GET", "/mail/mailboxes"),
        ("GET", "/mail/mailboxes/1/senders"),
        ("POST", "/mail/messages"),
        ("GET", "/mail/messages"),
        ("GET", "/mail/messages/42"),
    ]
    assert mail_emulator.state.sent[0]["request"]["subject"] == "Hello"


def test_open_and_close_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    done = run_example(block_with("class MailService"), mail_emulator, tmp_path)
    assert done.stdout == f"{len(mail_emulator.state.mailboxes)} mailbox(es)\n"
    assert [r.path for r in mail_emulator.requests] == ["/mail/mailboxes"]


async def test_a_client_never_opened_says_how_to_open_it() -> None:
    # The docs quote this message ("Opening and closing"): it must stay true.
    mail = MailClient("vibe_api_docs_example_key")
    with pytest.raises(Exception, match=re.escape("'await client.open()' first")):
        await mail.mailboxes.list()


def test_client_options_listing_matches_the_signature() -> None:
    # The listing of "Client options" names every parameter, in order, with its real default.
    listing = block_with("MailClient(\n    api_key=None")
    call = ast.parse(listing).body[0]
    assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
    shown = {kw.arg: kw.value for kw in call.value.keywords}
    parameters = inspect.signature(MailClient).parameters
    assert list(shown) == list(parameters)
    names = {"RateLimit": RateLimit, "RetryPolicy": RetryPolicy}
    for name, parameter in parameters.items():
        value = eval(compile(ast.Expression(shown[name]), name, "eval"), names)
        if name == "rate_limit":
            assert value == RateLimit(per_second=2, burst=50)
        elif name == "retry":
            assert parameter.default is None and value == RetryPolicy()
        else:
            assert value == parameter.default, name


def test_paging_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    done = run_example(block_with("page_size=200", "iter_contacts"), mail_emulator, tmp_path)
    lines = done.stdout.splitlines()
    unseen = sum(1 for m in mail_emulator.state.messages.values() if m["mailboxId"] == 1)
    count, offset, limit, has_more, _total = lines[0].split()
    assert (int(count), offset, limit, has_more) == (min(unseen, 200), "0", "200", "False")
    assert all(line.startswith("page at offset ") for line in lines[1:-1])
    assert lines[-1].endswith("employees on the first page")
    contacts = [r for r in mail_emulator.requests if r.path == "/mail/recipients/contacts"]
    assert contacts and all(r.json["limit"] == 100 for r in contacts)


def test_bindings_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    done = run_example(block_with("create_task(1001)", "msg.bindings"), mail_emulator, tmp_path)
    task_id, bindings = done.stdout.strip().split(" ", 1)
    # The shape the docs promise for the emulator's bindings.
    assert bindings == f"({{'type': 'task', 'id': {task_id}}},)"


def test_hooks_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    mail_emulator.faults.schedule("502", methods=["GET"])
    done = run_example(block_with("def on_retry", "asyncio.run"), mail_emulator, tmp_path)
    assert re.fullmatch(
        r"/mail/mailboxes: attempt 1 failed \(server_error\), wait \d+\.\ds\n", done.stdout
    )


def test_readme_fixture_example_passes(tmp_path: Path) -> None:
    example = block_with("def test_send_is_never_repeated")
    (tmp_path / "test_readme_example.py").write_text(example)
    # A fresh project: no configuration of ours, pytest-asyncio in its default (strict) mode.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_readme_raw_responses_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    done = run_example(block_with("with_raw_response", "asyncio.run"), mail_emulator, tmp_path)
    lines = done.stdout.splitlines()
    assert lines[1].startswith("200 ")  # status, X-RateLimit-Remaining, request id
    assert lines[2] == "True"  # parsed and data agree
    assert ("GET", "/me") in [(r.method, r.path) for r in mail_emulator.requests]


def test_every_readme_python_block_compiles() -> None:
    # Copied into a file, each block must at least be valid Python (no top-level `async with`).
    located = located_blocks()
    assert len(located) >= 13
    for path, block in located:
        compile(block, f"{path.relative_to(ROOT)}: python block", "exec")


def _block_with_arguments(test: str) -> list[tuple[str, ...]]:
    """The literal arguments of each ``block_with(...)`` call in the test ``file::function``."""
    file, function = test.split("::")
    tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
    found = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function
    ]
    assert len(found) == 1, f"{test}: no such test"
    return [
        tuple(ast.literal_eval(arg) for arg in node.args)
        for node in ast.walk(found[0])
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "block_with"
    ]


def test_every_python_block_is_run_or_listed() -> None:
    blocks = python_blocks()
    listed = {**RUN, **NOT_RUN}
    assert not set(RUN) & set(NOT_RUN)
    for path, block in located_blocks():
        keys = [key for key in listed if all(needle in block for needle in key)]
        where = f"{path.relative_to(ROOT)}:\n{block[:200]}"
        assert keys, f"a python block neither run nor listed in readme_examples: {where}"
        assert len(keys) == 1, f"a python block matched by {keys}: {where}"
    for key, reason in NOT_RUN.items():
        assert any(all(n in b for n in key) for b in blocks), f"NOT_RUN {key}: no such block"
        assert len(reason) > 20, key
    for key, test in RUN.items():
        # The named test exists and runs this very block (found by its own needles).
        block = block_with(*key)
        assert block in [block_with(*arguments) for arguments in _block_with_arguments(test)], (
            f"{test} does not run the block {key}"
        )


def test_docs_have_no_code_block_the_checks_would_miss() -> None:
    # Only ```python blocks are collected: a ```py or ```python3 block would go untested.
    for path in doc_files():
        languages = re.findall(r"^```(\S+)", path.read_text(encoding="utf-8"), re.M)
        assert set(languages) <= {"python"}, (path, languages)


def _github_anchor(heading: str) -> str:
    """The anchor GitHub (and mkdocs' toc) gives a heading: lower case, punctuation dropped."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_links_reach_files_and_headings() -> None:
    # mkdocs checks the links of docs/; the README, outside the site, is checked here.
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)", text)
    local = [(target, anchor) for target, anchor in links if "://" not in target]
    assert len(local) >= 20
    for target, anchor in local:
        path = ROOT / target
        assert path.exists(), target
        if anchor:
            headings = re.findall(r"^#+ (.*)$", path.read_text(encoding="utf-8"), re.M)
            assert anchor in [_github_anchor(h) for h in headings], f"{target}#{anchor}"


def test_readme_bulk_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    example = block_with("get_many", "tqdm")
    done = run_example(example, mail_emulator, tmp_path, timeout=120)
    listed = [r for r in mail_emulator.requests if r.path == "/mail/messages"]
    fetched = [r for r in mail_emulator.requests if r.path.startswith("/mail/messages/")]
    assert listed and len(done.stdout.splitlines()) == len(fetched) > 0


def test_readme_tenants_example_runs(
    mail_emulator: MailEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_key = "vibe_app_readme_tenants_key"
    portals = {"tok_acme": "acme.bitrix24.ru", "tok_globex": "globex.bitrix24.de"}
    mail_emulator.add_key(app_key, app=True, tokens=tuple(portals))
    for token, portal in portals.items():
        mail_emulator.add_session(app_key, token, portal=portal)
    monkeypatch.setattr(mail_emulator, "api_key", app_key)  # the script's BITRIX_MAIL_API_KEY
    done = run_example(block_with("for_session", "asyncio.run"), mail_emulator, tmp_path)
    boxes = len(mail_emulator.state.mailboxes)
    assert done.stdout.splitlines() == [
        f"acme.bitrix24.ru: {boxes} mailbox(es), {1 + boxes} requests",
        f"globex.bitrix24.de: {boxes} mailbox(es), {2 + boxes} requests",  # with its /v1/me
    ]
    seen = [(r.portal, r.path) for r in mail_emulator.requests]
    # Each tenant's calls went out with its own session, to its own portal; /v1/me only for
    # the tenant whose portal was not given, and once.
    assert {portal for portal, _ in seen} == set(portals.values())
    assert seen.count(("globex.bitrix24.de", "/me")) == 1
    assert ("acme.bitrix24.ru", "/me") not in seen
    assert all(r.status == 200 for r in mail_emulator.requests)
