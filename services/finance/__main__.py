from services.common.serve import serve
from services.finance.app import build_app
from services.finance.settings import FinanceSettings

serve(build_app, FinanceSettings())
