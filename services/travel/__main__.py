import sys

from services.common.serve import main
from services.travel.app import build_app
from services.travel.settings import TravelSettings

sys.exit(main(build_app, TravelSettings))
