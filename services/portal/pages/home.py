"""The front page: what the signed-in person can do here, by their roles."""

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.common.auth import Principal, page
from services.portal.web import render

router = APIRouter()

SignedIn = Annotated[Principal, page()]


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, principal: SignedIn) -> HTMLResponse:
    return render(request, "home.html")
