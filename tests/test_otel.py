"""OpenTelemetry over loopback: the real SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from readme_examples import block_with, run_example

from bitrix_mail_async import Hooks, MailClient, RequestEvent, RetryPolicy, errors, otel
from bitrix_mail_async.testing import MailEmulator

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.05)


class Telemetry(NamedTuple):
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    hooks: Hooks
    tracer_provider: TracerProvider

    def finished(self) -> Sequence[ReadableSpan]:
        return self.spans.get_finished_spans()

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def telemetry() -> Telemetry:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    hooks = otel.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    return Telemetry(spans, reader, hooks, tracer_provider)


def client(emulator: MailEmulator, hooks: Hooks, **kwargs: Any) -> MailClient:
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("retry", FAST_RETRY)
    return MailClient(emulator.api_key, base_url=emulator.base_url, hooks=hooks, **kwargs)


def port_of(emulator: MailEmulator) -> int:
    port = urlsplit(emulator.base_url).port
    assert port is not None
    return port


async def test_a_call_is_one_client_span_with_semantic_attributes(
    mail_emulator: MailEmulator, telemetry: Telemetry
) -> None:
    async with client(mail_emulator, telemetry.hooks) as mail:
        await mail.messages.get(1001)
    (span,) = telemetry.finished()
    assert span.name == "GET /v1/mail/messages/{id}"
    assert span.kind is trace.SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.template": "/v1/mail/messages/{id}",
        "server.address": "127.0.0.1",
        "server.port": port_of(mail_emulator),
        "http.response.status_code": 200,
    }
    assert span.status.status_code is trace.StatusCode.UNSET
    (attempt,) = span.events
    assert attempt.name == "attempt"
    assert dict(attempt.attributes or {})["bitrix_mail.attempt"] == 1
    assert dict(attempt.attributes or {})["http.response.status_code"] == 200


async def test_retries_stay_in_one_span_and_each_attempt_is_measured(
    mail_emulator: MailEmulator, telemetry: Telemetry
) -> None:
    mail_emulator.faults.schedule("502", methods=["GET"])
    async with client(mail_emulator, telemetry.hooks) as mail:
        await mail.mailboxes.get(1)
    (span,) = telemetry.finished()
    assert [event.name for event in span.events] == ["attempt", "retry", "attempt"]
    failed = dict(span.events[0].attributes or {})
    assert (failed["http.response.status_code"], failed["error.type"]) == (502, "502")
    retry = dict(span.events[1].attributes or {})
    assert retry["bitrix_mail.retry.reason"] == "server_error"
    attributes = dict(span.attributes or {})
    assert attributes["http.request.resend_count"] == 1
    assert attributes["http.response.status_code"] == 200
    assert "error.type" not in attributes

    durations = telemetry.points("http.client.request.duration")
    by_status = {dict(p.attributes)["http.response.status_code"]: p for p in durations}
    assert sorted(by_status) == [200, 502]
    assert dict(by_status[502].attributes)["error.type"] == "502"
    assert "error.type" not in dict(by_status[200].attributes)
    assert dict(by_status[200].attributes)["url.template"] == "/v1/mail/mailboxes/{id}"
    assert all(p.count == 1 and p.sum >= 0.0 for p in durations)
    # The semantic conventions' bucket advice, in seconds.
    assert list(by_status[200].explicit_bounds)[:3] == [0.005, 0.01, 0.025]
    (waits,) = telemetry.points("bitrix_mail.client.limiter.wait")
    assert waits.count == 2  # one per attempt


async def test_429s_are_counted_and_told_on_the_span(
    mail_emulator: MailEmulator, telemetry: Telemetry
) -> None:
    mail_emulator.faults.schedule("429", "429", methods=["GET"])
    async with client(mail_emulator, telemetry.hooks) as mail:
        await mail.mailboxes.list()
    (counted,) = telemetry.points("bitrix_mail.client.rate_limited")
    assert counted.value == 2
    assert dict(counted.attributes)["url.template"] == "/v1/mail/mailboxes"
    (span,) = telemetry.finished()
    names = [event.name for event in span.events]
    assert names.count("rate_limited") == 2
    assert names.count("attempt") == 3
    assert dict(span.attributes or {})["http.request.resend_count"] == 2


async def test_a_failed_call_sets_error_type_and_status(
    mail_emulator: MailEmulator, telemetry: Telemetry
) -> None:
    async with client(mail_emulator, telemetry.hooks) as mail:
        with pytest.raises(errors.NotFoundError) as info:
            await mail.messages.get(999_999)
    assert info.value.__context__ is None  # the span's scope added nothing to the error
    (span,) = telemetry.finished()
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "404"
    assert attributes["bitrix_mail.error.code"] == "ENTITY_NOT_FOUND"
    assert attributes["http.response.status_code"] == 404
    assert span.status.status_code is trace.StatusCode.ERROR
    exception = next(e for e in span.events if e.name == "exception")
    assert dict(exception.attributes or {})["exception.type"].endswith("NotFoundError")


async def test_a_call_without_any_answer_names_its_exception(telemetry: Telemetry) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with MailClient(
        "vibe_api_otel_secret_key_0001",
        base_url=f"http://127.0.0.1:{port}/v1",
        rate_limit=None,
        retry=FAST_RETRY,
        hooks=telemetry.hooks,
    ) as mail:
        with pytest.raises(errors.TransportError):
            await mail.mailboxes.list()
    (span,) = telemetry.finished()
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "bitrix_mail_async.errors.TransportError"
    assert "http.response.status_code" not in attributes
    assert [e.name for e in span.events].count("attempt") == FAST_RETRY.max_attempts
    assert "vibe_api_otel_secret_key_0001" not in span.to_json()


async def test_the_span_is_current_during_the_call_and_nests_under_the_callers(
    mail_emulator: MailEmulator, telemetry: Telemetry
) -> None:
    current: list[trace.Span] = []

    def remember(event: RequestEvent) -> None:
        current.append(trace.get_current_span())

    hooks = telemetry.hooks + Hooks(on_request=remember)
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with client(mail_emulator, hooks) as mail:
        with tracer.start_as_current_span("handler") as parent:
            await mail.mailboxes.list()
    call, handler = telemetry.finished()
    assert handler.name == "handler"
    assert call.parent is not None
    assert call.parent.span_id == parent.get_span_context().span_id
    assert [span.get_span_context().span_id for span in current] == [call.context.span_id]
    assert mail_emulator.api_key not in call.to_json()


def test_the_readme_example_runs(mail_emulator: MailEmulator, tmp_path: Path) -> None:
    # The README's OpenTelemetry example, word for word (section "Observability").
    done = run_example(block_with("otel.instrument()", "asyncio.run"), mail_emulator, tmp_path)
    assert '"name": "GET /v1/mail/mailboxes"' in done.stdout
    assert '"http.response.status_code": 200' in done.stdout
    assert mail_emulator.api_key not in done.stdout + done.stderr
