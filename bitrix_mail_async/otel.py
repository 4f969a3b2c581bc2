"""OpenTelemetry for MailClient (extra ``otel``): one span per call, HTTP client metrics.

``MailClient(hooks=otel.instrument())`` traces every logical call (all its attempts, retries
and waits) as one CLIENT span named ``"{method} {url.template}"``, e.g.
``GET /v1/mail/messages/{id}``, current while the call runs, so spans made inside it (an
instrumented aiohttp, your log correlation) nest under it. Attributes follow the HTTP
semantic conventions: ``http.request.method``, ``url.template``, ``server.address``,
``server.port``; at the end ``http.response.status_code`` (of the last attempt),
``http.request.resend_count`` (when retried) and, on failure, ``error.type`` (the status code
for an HTTP error, else the exception's qualified class name) with the span status ERROR and
the exception recorded; ``bitrix_mail.error.code`` is the gateway's error code.
Each attempt is a span event ``attempt`` (number, status, duration, limiter wait, error);
retries and 429s are events ``retry`` and ``rate_limited``.

Metrics (all with method, ``url.template`` and server attributes):

* ``http.client.request.duration`` (histogram, s): one point per attempt, with
  ``http.response.status_code`` and ``error.type``;
* ``bitrix_mail.client.rate_limited`` (counter): 429 RATE_LIMITED answers;
* ``bitrix_mail.client.limiter.wait`` (histogram, s): what each attempt waited for the
  client's rate limiter and the gateway's window before it was sent.

Nothing here sees the API key, headers, query parameters or bodies: the hooks' events do not
carry them. It is built on :class:`~bitrix_mail_async.Hooks`; combine it with your own hooks
with ``otel.instrument() + Hooks(...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bitrix_mail_async import errors
from bitrix_mail_async._hooks import (
    CallEvent,
    Hooks,
    RateLimitedEvent,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    with_call_scope,
)
from bitrix_mail_async._version import __version__

try:
    from opentelemetry import metrics, trace
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError(
        "bitrix_mail_async.otel needs OpenTelemetry: pip install 'bitrix-mail-async[otel]'"
    ) from exc

__all__ = ["instrument"]

# The semantic conventions' advice for http.client.request.duration (seconds).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_ERRORS_MODULE = errors.__name__
Attributes = dict[str, str | int | float]


class _Call:
    """What the span of one logical call collects from its attempts."""

    __slots__ = ("attributes", "span", "status", "tries", "waited")

    def __init__(self, span: trace.Span, attributes: Attributes) -> None:
        self.span = span
        self.attributes = attributes  # the metric attributes every attempt shares
        self.status: int | None = None
        self.tries = 0
        self.waited = 0.0


# The call in progress in this task; hooks run in the caller's task, inside its scope.
_CURRENT: ContextVar[_Call | None] = ContextVar("bitrix_mail_async.otel.call", default=None)


def _error_type(status: int | None, error: BaseException | str | None) -> str | None:
    """``error.type`` by the conventions: the status of an HTTP error, else the class name."""
    if status is not None and status >= 400:
        return str(status)
    if error is None:
        return None
    if isinstance(error, str):  # an event names an errors.* class
        return f"{_ERRORS_MODULE}.{error}"
    cls = type(error)
    return f"{cls.__module__}.{cls.__qualname__}"


class _Telemetry:
    """The tracer, the instruments, and the hooks and call scope that feed them."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        self._tracer = trace.get_tracer(__name__, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(__name__, __version__, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._rate_limited = meter.create_counter(
            "bitrix_mail.client.rate_limited",
            unit="{response}",
            description="429 RATE_LIMITED answers of the gateway.",
        )
        self._limiter_wait = meter.create_histogram(
            "bitrix_mail.client.limiter.wait",
            unit="s",
            description="Time an attempt waited for the rate limiter and the gateway's window.",
        )

    @contextmanager
    def call(self, event: CallEvent) -> Iterator[None]:
        """The span of one logical call, current while the call runs."""
        attributes: Attributes = {
            "http.request.method": event.method,
            "url.template": event.url_template,
            "server.address": event.server_address,
            "server.port": event.server_port,
        }
        span = self._tracer.start_span(
            f"{event.method} {event.url_template}",
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        state = _Call(span, attributes)
        token = _CURRENT.set(state)
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                yield
        except BaseException as exc:
            _end(state, exc)
            raise
        else:
            _end(state, None)
        finally:
            _CURRENT.reset(token)

    def on_request(self, event: RequestEvent) -> None:
        """Record the limiter wait of an attempt about to be sent."""
        state = _CURRENT.get()
        if state is not None:
            state.waited = event.waited
            self._limiter_wait.record(event.waited, state.attributes)

    def on_response(self, event: ResponseEvent) -> None:
        """Record an attempt's duration and add it to the span as an event."""
        state = _CURRENT.get()
        if state is None:
            return
        state.status = event.status
        state.tries = event.attempt
        point = dict(state.attributes)
        attempt: Attributes = {
            "bitrix_mail.attempt": event.attempt,
            "bitrix_mail.attempt.duration": event.elapsed,
            "bitrix_mail.limiter.wait": state.waited,
        }
        if event.status is not None:
            point["http.response.status_code"] = attempt["http.response.status_code"] = event.status
        error_type = _error_type(event.status, event.error)
        if error_type is not None:
            point["error.type"] = attempt["error.type"] = error_type
        self._duration.record(event.elapsed, point)
        state.span.add_event("attempt", attempt)

    def on_retry(self, event: RetryEvent) -> None:
        """Add a retry (why, and the wait before the next attempt) to the span."""
        state = _CURRENT.get()
        if state is not None:
            state.span.add_event(
                "retry",
                {
                    "bitrix_mail.attempt": event.attempt,
                    "bitrix_mail.retry.reason": event.reason,
                    "bitrix_mail.retry.wait": event.wait,
                },
            )

    def on_rate_limited(self, event: RateLimitedEvent) -> None:
        """Count a 429 and add it to the span."""
        state = _CURRENT.get()
        if state is None:
            return
        self._rate_limited.add(1, state.attributes)
        attributes: Attributes = {"bitrix_mail.attempt": event.attempt}
        if event.retry_after is not None:
            attributes["bitrix_mail.retry_after"] = event.retry_after
        state.span.add_event("rate_limited", attributes)


def _end(state: _Call, exc: BaseException | None) -> None:
    """Put the call's outcome on its span and end it."""
    span = state.span
    if state.status is not None:
        span.set_attribute("http.response.status_code", state.status)
    if state.tries > 1:
        span.set_attribute("http.request.resend_count", state.tries - 1)
    if exc is not None:
        status = exc.status if isinstance(exc, errors.APIError | errors.DecodeError) else None
        error_type = _error_type(status or None, exc)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
        if isinstance(exc, errors.APIError) and exc.code:
            span.set_attribute("bitrix_mail.error.code", exc.code)
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
    span.end()


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> Hooks:
    """Hooks that trace each call as a span and record metrics; pass as ``MailClient(hooks=)``.

    Without providers, the global ones apply (``trace.set_tracer_provider`` and
    ``metrics.set_meter_provider``; no-ops until set). One instance may serve many clients.
    """
    telemetry = _Telemetry(tracer_provider, meter_provider)
    hooks = Hooks(
        on_request=telemetry.on_request,
        on_response=telemetry.on_response,
        on_retry=telemetry.on_retry,
        on_rate_limited=telemetry.on_rate_limited,
    )
    return with_call_scope(hooks, telemetry.call)
