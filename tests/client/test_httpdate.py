"""HTTP-dates in all three RFC 9110 forms, always UTC whatever the host's zone."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from bitrix_mail_async._httpdate import parse_http_date

EXPECTED = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "  Sun, 06 Nov 1994 08:49:37 GMT  ",
    ],
)
def test_the_three_forms_name_the_same_instant(text: str) -> None:
    assert parse_http_date(text, now=datetime(2026, 12, 5, tzinfo=UTC)) == EXPECTED


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "3",
        "Sun, 06 Nov 1994 08:49:37 EST",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun Nov  6 08:49:37 1994 " + "x" * 100,
        "tomorrow",
    ],
)
def test_anything_else_is_none(text: str | None) -> None:
    assert parse_http_date(text) is None


def test_rfc850_two_digit_year_more_than_50_years_ahead_is_the_past_century() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now=now) == EXPECTED
    assert parse_http_date("Friday, 05-Dec-36 00:00:00 GMT", now=now) == datetime(
        2036, 12, 5, tzinfo=UTC
    )


def test_a_leap_second_is_the_end_of_the_previous_one() -> None:
    when = parse_http_date("Wed, 31 Dec 2016 23:59:60 GMT")
    assert when == datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo", "UTC"])
def test_asctime_is_gmt_under_any_local_zone(zone: str) -> None:
    code = (
        "from bitrix_mail_async._httpdate import parse_http_date;"
        "print(parse_http_date('Sat Dec  5 19:31:42 2026').timestamp())"
    )
    env = {**os.environ, "TZ": zone}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert float(out.stdout) == datetime(2026, 12, 5, 19, 31, 42, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_an_asctime_retry_after_waits_what_it_says_under_any_local_zone(zone: str) -> None:
    # Issue 21 item 5: read in the local zone, 3 s became 18,003 s in New York and 0 in Tokyo.
    code = (
        "import time;"
        "from datetime import UTC, datetime, timedelta;"
        "from bitrix_mail_async._envelope import parse_retry_after;"
        "when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30);"
        "print(parse_retry_after(when.strftime('%a %b %e %H:%M:%S %Y')))"
    )
    env = {**os.environ, "TZ": zone}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    # 30 s ahead, truncated to the second; the subprocess's start-up may take a few seconds.
    assert 20.0 <= float(out.stdout) <= 30.0
