"""Errors the services raise and how the API answers them: ``{"detail": "one line"}``, or FastAPI's
422 list shape (``loc`` naming the field) for a bad field in a request body."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


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


class FieldError(ApiError):
    """A request field that cannot be accepted: 422 naming the field, like FastAPI's own validation."""

    status_code = 422

    def __init__(self, field: str, msg: str, where: str = "body", type_: str = "value_error"):
        super().__init__(f"{field}: {msg}")
        self.field, self.msg, self.where, self.type = field, msg, where, type_

    def payload(self) -> dict:
        loc = [self.where] + ([self.field] if self.field else [])
        return {"detail": [{"loc": loc, "msg": self.msg, "type": self.type}]}


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(FieldError)
    async def _field_error(_: Request, exc: FieldError) -> JSONResponse:
        return JSONResponse(exc.payload(), status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
