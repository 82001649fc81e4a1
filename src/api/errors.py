"""Errors become JSON responses here, at the edge, in one shape:
`{"error": {"code": ..., "message": ..., "details": ...}}`.

Service code (shared with workers) raises domain exceptions; only this module knows HTTP.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nats.errors import ConnectionClosedError as NatsConnectionClosed
from nats.errors import NoRespondersError as NatsNoResponders
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError
from nats.js.errors import ServiceUnavailableError as JsServiceUnavailable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from src.engine.core.errors import (
    ArtifactNotFoundError,
    BrokerNotStartedError,
    EncodeError,
    InvalidCursorError,
    LabelError,
    MessageTooLargeError,
    ReplicationError,
    ScheduleNotFoundError,
    ScheduleReadOnlyError,
    StreamFullError,
    TaskConflictError,
    TaskNotFoundError,
    WorkflowNotFoundError,
)

logger = logging.getLogger("taskjet.api")
# What a client is told to wait when the task queue is full.
_QUEUE_FULL_RETRY_S = 5


class ApiError(Exception):
    """A domain error with its HTTP status and stable code."""

    status_code = 400
    code = "bad_request"

    headers: dict[str, str] | None = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class UnauthorizedError(ApiError):
    status_code = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


class ForbiddenError(ApiError):
    status_code = 403
    code = "forbidden"


class ConflictError(ApiError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnprocessableError(ApiError):
    status_code = 422
    code = "validation_error"


class TooManyRequestsError(ApiError):
    status_code = 429
    code = "too_many_requests"


class ServiceUnavailableError(ApiError):
    status_code = 503
    code = "unavailable"


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "not_found", str(exc))


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TaskConflictError)
    return error_response(409, "conflict", str(exc), {"state": exc.state.value})


async def _read_only(_: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "conflict", str(exc))


async def _bad_cursor(_: Request, exc: Exception) -> JSONResponse:
    return error_response(422, "validation_error", str(exc), [{"loc": ["query", "cursor"]}])


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
        for err in exc.errors()
    ]
    return error_response(422, "validation_error", "request validation failed", details)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def _label_error(_: Request, exc: Exception) -> JSONResponse:
    return error_response(422, "invalid_label", str(exc))


async def _too_large(_: Request, exc: Exception) -> JSONResponse:
    return error_response(413, "payload_too_large", str(exc))


async def _stream_full(_: Request, exc: Exception) -> JSONResponse:
    return error_response(
        503, "queue_full", str(exc), headers={"Retry-After": str(_QUEUE_FULL_RETRY_S)}
    )


async def _encode_error(_: Request, exc: Exception) -> JSONResponse:
    return error_response(422, "not_serialisable", str(exc))


# NATS or Redis not answering now (a leader election, a failover, a restart): 503, not 500.
_UNAVAILABLE: tuple[type[Exception], ...] = (
    NatsTimeoutError,
    NatsNoResponders,
    NatsConnectionClosed,
    JsServiceUnavailable,
    NoStreamResponseError,
    RedisConnectionError,
    RedisTimeoutError,
    ReplicationError,
    BrokerNotStartedError,
)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    logger.warning("a dependency did not answer: %r", exc)
    return error_response(
        503,
        "unavailable",
        "NATS or Redis did not answer in time (a failover may be under way): try again",
        headers={"Retry-After": "2"},
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(EncodeError, _encode_error)
    app.add_exception_handler(MessageTooLargeError, _too_large)
    app.add_exception_handler(StreamFullError, _stream_full)
    app.add_exception_handler(LabelError, _label_error)
    app.add_exception_handler(TaskNotFoundError, _not_found)
    app.add_exception_handler(WorkflowNotFoundError, _not_found)
    app.add_exception_handler(ArtifactNotFoundError, _not_found)
    app.add_exception_handler(TaskConflictError, _conflict)
    app.add_exception_handler(ScheduleNotFoundError, _not_found)
    app.add_exception_handler(ScheduleReadOnlyError, _read_only)
    app.add_exception_handler(InvalidCursorError, _bad_cursor)
    for unavailable in _UNAVAILABLE:
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
