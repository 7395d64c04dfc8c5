from typing import ClassVar

from pydantic import Field

from services.common.documents import Bank
from services.common.settings import ServiceSettings


class FinanceSettings(ServiceSettings):
    service: ClassVar[str] = "finance"
    default_port: ClassVar[int] = 8004

    dashboard_ping_seconds: float = Field(default=15.0, gt=0, description="comment ping on an idle dashboard stream")

    # Where cities pay, printed on invoices and statements. PLACEHOLDERS: not the Council of Europe's real
    # account; production sets BANK_ACCOUNT_HOLDER, BANK_IBAN, BANK_BIC.
    bank_account_holder: str = Field(default=Bank.account_holder, description="PLACEHOLDER default")
    bank_iban: str = Field(default=Bank.iban, description="PLACEHOLDER default")
    bank_bic: str = Field(default=Bank.bic, description="PLACEHOLDER default")

    @property
    def bank(self) -> Bank:
        return Bank(self.bank_account_holder, self.bank_iban, self.bank_bic)
