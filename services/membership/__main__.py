import sys

from services.common.serve import main
from services.membership.app import build_app
from services.membership.settings import MembershipSettings

sys.exit(main(build_app, MembershipSettings))
