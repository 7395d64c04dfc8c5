import sys

from services.common.serve import main
from services.notifications.app import build_app
from services.notifications.settings import NotificationsSettings

sys.exit(main(build_app, NotificationsSettings))
