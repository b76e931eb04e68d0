"""Errors the services raise and how the API answers them: ``{"detail": "one line"}``, or FastAPI's
422 list shape (``loc`` naming the field) for a bad field in a request body. The core's serving errors
(``distill.generation.server``) carry no HTTP: they are mapped to status codes here (``as_api_error``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from distill.generation import server as serving


class ApiError(Exception):
    status_code = 400

    def __init__(self, detail: str, status_code: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class TooLarge(ApiError):
    status_code = 413


class Unavailable(ApiError):
    status_code = 503


class Busy(ApiError):
    status_code = 429
    retry_after_s = 1


# The core's serving errors, most specific first: the API error each is answered as.
_SERVING_ERRORS: tuple[tuple[type[serving.ServingError], type[ApiError]], ...] = (
    (serving.ModelNotFound, NotFound), (serving.Busy, Busy), (serving.ModelUnavailable, Unavailable),
    (serving.ServingError, ApiError))


def as_api_error(exc: serving.ServingError) -> ApiError:
    """A serving error as the API answers it: the same one-line message, the status its kind has."""
    kind = next(api for domain, api in _SERVING_ERRORS if isinstance(exc, domain))
    api = kind(str(exc))
    if hasattr(exc, "retry_after_s"):
        api.retry_after_s = exc.retry_after_s
    return api


class FieldError(ApiError):
    """Request fields that cannot be accepted: 422 naming each, in the shape of FastAPI's own validation."""

    status_code = 422

    def __init__(self, field: str, msg: str, where: str = "body", type_: str = "value_error",
                 more: list[tuple[str, str]] | None = None):
        super().__init__(f"{field}: {msg}")
        self.issues = [(field, msg), *(more or [])]
        self.field, self.msg, self.where, self.type = field, msg, where, type_

    @classmethod
    def of(cls, issues: list[tuple[str, str]]) -> "FieldError":
        (field, msg), *more = issues
        return cls(field, msg, more=more)

    def payload(self) -> dict:
        return {"detail": [{"loc": [self.where] + ([f] if f else []), "msg": m, "type": self.type}
                           for f, m in self.issues]}


_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "invalid_request_error", 409: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error"}


def _openai_path(request: Request) -> bool:
    return request.url.path == "/v1" or request.url.path.startswith("/v1/")


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    """OpenAI's error shape, which its clients parse: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "server_error"), "param": param,
                      "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _retry_after(exc: ApiError) -> dict[str, str] | None:
    return {"Retry-After": str(getattr(exc, "retry_after_s", 1))} if exc.status_code in (429, 503) else None


def _api_response(request: Request, exc: ApiError) -> JSONResponse:
    if _openai_path(request):
        code = "model_not_found" if isinstance(exc, NotFound) and "model" in exc.detail else None
        return openai_error(exc.status_code, exc.detail, param="model" if code else None, code=code,
                            headers=_retry_after(exc))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=_retry_after(exc))


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(FieldError)
    async def _field_error(request: Request, exc: FieldError) -> JSONResponse:
        if _openai_path(request):
            return openai_error(400, exc.detail, param=exc.field)
        return JSONResponse(exc.payload(), status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _api_response(request, exc)

    @app.exception_handler(serving.ServingError)
    async def _serving_error(request: Request, exc: serving.ServingError) -> JSONResponse:
        return _api_response(request, as_api_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if not _openai_path(request):
            return await request_validation_exception_handler(request, exc)
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", []) if x != "body"]
        return openai_error(400, f"{'.'.join(loc) or 'body'}: {first.get('msg', 'invalid request')}",
                            param=loc[0] if loc else None)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if not _openai_path(request):
            return await http_exception_handler(request, exc)
        code = "invalid_api_key" if exc.status_code == 401 else None
        return openai_error(exc.status_code, str(exc.detail), code=code, headers=getattr(exc, "headers", None))
