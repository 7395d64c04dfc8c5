"""The domain's refusals: the kinds of "no" every service's rules can say, free of any web framework.

Each `domain.py` raises these; `services/common/errors.py` maps them to HTTP once. A refusal
carries a sentence for people (`str(err)`), a stable `code` for programs (the portal translates by
it) and, where one input is to blame, the `field` it names. A refusal changes nothing: it is raised
before anything is written, or the unit of work rolls back.
"""


class Refusal(Exception):
    """Base of every refusal. `code` defaults to the kind's own; pass a more precise one."""

    code = "refused"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.field = field


class NotFound(Refusal):
    """The thing asked for does not exist, or is not the asker's to see."""

    code = "not_found"


class Conflict(Refusal):
    """The request is well formed but the current state forbids it (signing twice, paying a cancelled invoice)."""

    code = "conflict"


class NotYetKnown(Refusal):
    """A fact this service learns from another service's events has not arrived yet: worth a retry."""

    code = "not_yet_known"


class Invalid(Refusal):
    """The request breaks a rule about its own content (an event ending before it starts)."""

    code = "invalid"


class NotYours(Refusal):
    """The caller may see the thing but not act for it this way (a delegate registering someone else)."""

    code = "not_yours"
