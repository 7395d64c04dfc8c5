import sys

from services.common.serve import main
from services.finance.app import build_app
from services.finance.settings import FinanceSettings

sys.exit(main(build_app, FinanceSettings))
