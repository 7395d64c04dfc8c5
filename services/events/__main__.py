from services.common.serve import serve
from services.events.app import build_app
from services.events.settings import EventsSettings

serve(build_app, EventsSettings())
