from services.common.serve import serve
from services.membership.app import build_app
from services.membership.settings import MembershipSettings

serve(build_app, MembershipSettings())
