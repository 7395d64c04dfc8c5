"""The operator's command line: dead letters, the finance rebuild, the annual contribution run, and
the platform's backlog and lag. `python -m deploy.ops --help`; each command has an example in its help."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

import httpx
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError
from pydantic import ValidationError

from contracts.topics import SERVICES
from services.common.settings import KafkaConnection, KafkaSettings

KAFKA_LOGIN = """Kafka: KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME,
KAFKA_SASL_PASSWORD (an operator logs in as a super user; locally:
  eval "$(.venv/bin/python -m deploy.kafka env --user admin)"), KAFKA_TOPIC_PREFIX (or --prefix)."""


class Refused(Exception):
    """What went wrong and what to do next, for the operator: printed without a traceback."""


def _kafka() -> KafkaConnection:
    try:
        return KafkaSettings().kafka_connection()
    except ValidationError as err:
        raise Refused("the Kafka login is incomplete: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())) from None


def _run(coroutine, kafka: KafkaConnection | None = None):
    try:
        return asyncio.run(coroutine)
    except KafkaConnectionError as err:
        raise Refused(f"cannot connect to Kafka at {kafka.bootstrap_servers if kafka else '?'} ({err}); check "
                      "KAFKA_BOOTSTRAP_SERVERS and that the broker runs (`python -m deploy.kafka status`), then the login "
                      "(KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_USERNAME/PASSWORD): the log line above says which failed") from None
    except TopicAuthorizationFailedError as err:
        raise Refused(f"{kafka.username if kafka else 'this login'} may not use that topic ({err}); "
                      "log in as a super user (KAFKA_SASL_USERNAME=admin) or grant it the ACLs") from None
    except KafkaError as err:
        if "Authentication" in type(err).__name__ or "SASL" in str(err):
            raise Refused(f"Kafka refused the login of {kafka.username if kafka else '?'} ({err}); "
                          "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD and KAFKA_SECURITY_PROTOCOL") from None
        raise Refused(f"Kafka said: {type(err).__name__}: {err}; try again, or check the broker's log") from None


# --- dead letters -------------------------------------------------------------------------


def dead_letters_list(args: argparse.Namespace) -> int:
    from deploy.ops import dead_letters

    kafka = _kafka()
    topic = dead_letters.physical_dead_letter_topic(args.service, args.prefix)
    letters = _run(dead_letters.read(kafka, topic), kafka)
    if not letters:
        print(f"{topic}: no dead letters")
        return 0
    shown = letters[-args.limit:] if args.limit else letters
    print(f"{topic}: {len(letters)} dead letters" + (f", the last {len(shown)}" if len(shown) < len(letters) else ""))
    print(f"{'at':>8}  {'failed at':32}  original topic[partition@offset]  type  id  reason")
    for letter in shown:
        print(letter.line())
    return 0


def dead_letters_replay(args: argparse.Namespace) -> int:
    from deploy.ops import dead_letters

    kafka = _kafka()
    topic = dead_letters.physical_dead_letter_topic(args.service, args.prefix)
    letters = _run(dead_letters.read(kafka, topic), kafka)
    try:
        chosen = letters if args.all else dead_letters.choose(letters, args.offset)
    except (dead_letters.NotFound, ValueError) as err:
        raise Refused(str(err)) from None
    if not chosen:
        print(f"{topic}: no dead letters to replay")
        return 0
    if not args.dry_run:
        _run(dead_letters.replay(kafka, chosen), kafka)
    verb = "would replay" if args.dry_run else "replayed"
    for letter in chosen:
        print(f"{verb} {letter.ref} -> {letter.original_topic}  {letter.header('ce_type') or '(no type)'}  "
              f"id={letter.header('ce_id') or '-'}  (was: {letter.header('dlq_reason')})")
    print(f"{verb} {len(chosen)} of {len(letters)} dead letters" + ("" if args.dry_run else
          "; the consumers skip any event they have applied already, so replaying twice changes nothing"))
    return 0


# --- rebuild, contributions, status --------------------------------------------------------


def rebuild(args: argparse.Namespace) -> int:
    from services.finance import rebuild as finance_rebuild

    options = args.options[1:] if args.options[:1] == ["--"] else args.options
    return finance_rebuild.main(options)


def token(args: argparse.Namespace) -> str:
    """A bearer token: --token / ICC_TOKEN as given, else Keycloak's password grant of icc-cli."""
    if args.token:
        return args.token
    url = f"{args.keycloak_url.rstrip('/')}/realms/icc/protocol/openid-connect/token"
    try:
        answer = httpx.post(url, timeout=30, data={
            "grant_type": "password", "client_id": "icc-cli", "username": args.username, "password": args.password})
    except httpx.HTTPError as err:
        raise Refused(f"cannot reach Keycloak at {url} ({err}); start it (`make keycloak`) or set KEYCLOAK_URL") from None
    if answer.status_code != 200:
        raise Refused(f"Keycloak refused {args.username!r} ({answer.status_code}: {answer.text[:200]}); "
                      "check --username/--password (ICC_USERNAME/ICC_PASSWORD): the user needs the finance role") from None
    return answer.json()["access_token"]


def contributions(args: argparse.Namespace) -> int:
    bearer = token(args)
    url = f"{args.finance_url.rstrip('/')}/contribution-runs"
    try:
        answer = httpx.post(url, json={"year": args.year}, headers={"authorization": f"Bearer {bearer}"}, timeout=120)
    except httpx.HTTPError as err:
        raise Refused(f"cannot reach finance at {url} ({err}); is it running? (--finance-url / FINANCE_URL)") from None
    if answer.status_code in (401, 403):
        raise Refused(f"finance refused the run ({answer.status_code}: {answer.text[:200]}); it takes a user with the finance role")
    if answer.status_code != 200:
        raise Refused(f"finance answered {answer.status_code}: {answer.text[:300]}")
    run = answer.json()
    print(f"contribution run {run['year']}: {run['issued']} invoices issued, {run['already_invoiced']} members already invoiced")
    return 0


def status(args: argparse.Namespace) -> int:
    from deploy.ops.status import status as platform_status

    kafka = _kafka()
    try:
        found = _run(platform_status(kafka, args.prefix, args.service), kafka)
    except ValidationError as err:
        raise Refused(f"a service's settings are invalid: {err}") from None
    for one in found:
        print("\n".join(one.lines()))
    return 0


# --- the parser -----------------------------------------------------------------------------


def _command(subparsers, name: str, run: Callable[[argparse.Namespace], int], summary: str, example: str, **kwargs) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name, help=summary, description=summary, epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    parser.set_defaults(run=run)
    return parser


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m deploy.ops",
        description="The operator's command line of the ICC platform.",
        epilog=KAFKA_LOGIN + "\n\nexamples:\n"
        "  python -m deploy.ops dead-letters list --service finance\n"
        "  python -m deploy.ops dead-letters replay --service finance --offset 3:17 --dry-run\n"
        "  python -m deploy.ops rebuild finance --into postgresql://icc:icc@127.0.0.1:5432/icc --schema finance_rebuilt\n"
        "  python -m deploy.ops contributions --year 2027\n"
        "  python -m deploy.ops status",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prefix = argparse.ArgumentParser(add_help=False)
    prefix.add_argument("--prefix", default=os.environ.get("KAFKA_TOPIC_PREFIX", ""),
                        help="KAFKA_TOPIC_PREFIX of the topics and groups (default: that variable, else none)")
    commands = top.add_subparsers(dest="command", required=True, metavar="command")

    letters = commands.add_parser(
        "dead-letters", help="list or replay a service's dead letters",
        description="A service's dead-letter topic: what its consumers could not process, and why.",
        epilog="examples:\n  python -m deploy.ops dead-letters list --service finance\n"
               "  python -m deploy.ops dead-letters replay --service finance --offset 3:17 --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    letter_commands = letters.add_subparsers(dest="action", required=True, metavar="action")
    listing = _command(letter_commands, "list", dead_letters_list, "one line per dead letter: where it sits "
                       "(partition:offset), when it failed, the topic it came from, its type, the reason",
                       "python -m deploy.ops dead-letters list --service finance --limit 20", parents=[prefix])
    listing.add_argument("--service", required=True, choices=SERVICES)
    listing.add_argument("--limit", type=int, default=0, help="only the last N (default: all)")
    replay = _command(letter_commands, "replay", dead_letters_replay,
                      "produce dead letters back to the topic they came from, with their original key and headers "
                      "(dlq_* removed); after a fix, or once what the service did not know yet has arrived. Safe: a "
                      "dead-lettered event was never recorded as processed, and one applied already is skipped",
                      "python -m deploy.ops dead-letters replay --service finance --offset 3:17 --offset 0:4", parents=[prefix])
    replay.add_argument("--service", required=True, choices=SERVICES)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", action="extend", nargs="+", metavar="P:N",
                       help="the dead letters at these partition:offset (as `list` prints them); a bare N if only one partition has it")
    which.add_argument("--all", action="store_true", help="every dead letter of the service")
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed, produce nothing")

    rebuilding = _command(commands, "rebuild", rebuild, "rebuild a service's figures from the topics into a fresh database "
                          "(services.finance.rebuild; its options pass through: --into, --schema, --batch-size)",
                          "python -m deploy.ops rebuild finance --into sqlite+aiosqlite:///.local/data/finance-rebuilt.db")
    rebuilding.add_argument("service", choices=["finance"], help="the service to rebuild (finance only, for now)")
    rebuilding.add_argument("options", nargs=argparse.REMAINDER, help="passed to the rebuild (`rebuild finance --help` lists them)")

    run = _command(commands, "contributions", contributions, "the annual contribution run: finance invoices every member "
                   "that owes the year (POST /contribution-runs; idempotent: a second run issues nothing)",
                   "ICC_USERNAME=finance ICC_PASSWORD=finance-pass python -m deploy.ops contributions --year 2027")
    run.add_argument("--year", type=int, required=True)
    run.add_argument("--finance-url", default=os.environ.get("FINANCE_URL", "http://127.0.0.1:8004"),
                     help="finance's base URL (default: FINANCE_URL, else http://127.0.0.1:8004)")
    run.add_argument("--keycloak-url", default=os.environ.get("KEYCLOAK_URL", "http://127.0.0.1:8180"),
                     help="Keycloak's base URL, realm icc (default: KEYCLOAK_URL, else http://127.0.0.1:8180)")
    run.add_argument("--username", default=os.environ.get("ICC_USERNAME", "finance"), help="default: ICC_USERNAME, else finance")
    run.add_argument("--password", default=os.environ.get("ICC_PASSWORD", "finance-pass"), help="default: ICC_PASSWORD, else finance-pass")
    run.add_argument("--token", default=os.environ.get("ICC_TOKEN"), help="a bearer token to use instead of signing in (default: ICC_TOKEN)")

    looking = _command(commands, "status", status, "per service: the outbox backlog (rows not yet published, from its "
                       "database: DATABASE_URL/DATABASE_SCHEMA, or <SERVICE>_DATABASE_URL/<SERVICE>_DATABASE_SCHEMA for one "
                       "service), its dead letters, and its consumer group's lag per partition (end offset - committed)",
                       "DATABASE_URL=postgresql://icc:icc@127.0.0.1:5432/icc python -m deploy.ops status --service finance",
                       parents=[prefix])
    looking.add_argument("--service", action="append", choices=SERVICES, help="only this service (repeatable; default: all)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except Refused as err:
        print(f"{args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
