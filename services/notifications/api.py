"""Notifications HTTP API: a person's language for the mails they get."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from services.common.auth import Principal, require
from services.common.refusals import NotFound
from services.common.runtime import get_unit_of_work
from services.notifications.db import NotificationsUnitOfWork, recipients

router = APIRouter(tags=["notifications"])
UoW = Annotated[NotificationsUnitOfWork, Depends(get_unit_of_work)]


class LanguageIn(BaseModel):
    language: Literal["en", "fr"] = Field(description="the language of the mails this address gets from now on")


class LanguageView(BaseModel):
    email: str
    language: Literal["en", "fr"]


@router.put("/recipients/{email}/language", summary="Choose the language of one's mails (English or French)",
            response_model=LanguageView, responses={404: {"description": "another person's address"}})
async def choose_language(
    body: LanguageIn, uow: UoW, principal: Annotated[Principal, require()],
    email: Annotated[str, Path(max_length=320, description="the recipient's e-mail address")],
) -> LanguageView:
    # The person themself (their token's address) or the secretariat; anyone else's address is not theirs to see.
    email = email.strip().lower()
    if not principal.has("secretariat") and (principal.email or "").lower() != email:
        raise NotFound(f"no recipient {email} of yours")
    async with uow:
        await uow.upsert(recipients, {"email": email, "language": body.language})
        uow.audit("RecipientLanguageChosen", email, details={"language": body.language})
        await uow.commit()
    return LanguageView(email=email, language=body.language)
