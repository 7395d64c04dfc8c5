from services.common.serve import serve
from services.travel.app import build_app
from services.travel.settings import TravelSettings

serve(build_app, TravelSettings())
