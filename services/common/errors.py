"""Refusals mapped to HTTP, once for every service: 404, 409 (retryable or final), 422."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common.refusals import Conflict, Invalid, NotFound, NotYetKnown, NotYours, Refusal

RETRY_AFTER_SECONDS = 2

STATUS = {NotFound: 404, NotYours: 403, Conflict: 409, NotYetKnown: 409, Invalid: 422}


def status_of(err: Refusal) -> int:
    return next((status for kind, status in STATUS.items() if isinstance(err, kind)), 409)


def refusal_body(err: Refusal) -> dict[str, object]:
    body: dict[str, object] = {"detail": str(err), "code": err.code}
    if err.field:
        body["field"] = err.field
    if isinstance(err, NotYetKnown | Conflict):
        body["retryable"] = isinstance(err, NotYetKnown)
    return body


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def refused(_: Request, err: Refusal) -> JSONResponse:
        response = JSONResponse(refusal_body(err), status_code=status_of(err))
        if isinstance(err, NotYetKnown):
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
