import sys

from services.common.serve import main
from services.events.app import build_app
from services.events.settings import EventsSettings

sys.exit(main(build_app, EventsSettings))
