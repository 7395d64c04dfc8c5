"""The operator's command line: what it accepts, what it refuses, and that its help reads."""

import pytest

from deploy.ops.__main__ import main, parser
from deploy.ops.dead_letters import DeadLetter, NotFound, choose


def parse(*argv: str):
    return parser().parse_args(list(argv))


def test_every_command_has_help_with_an_example(capsys) -> None:
    for command in (["dead-letters", "list"], ["dead-letters", "replay"], ["contributions"], ["status"], ["rebuild"]):
        with pytest.raises(SystemExit) as exit_:
            parse(*command, "--help")
        assert exit_.value.code == 0
        assert "example:\n  python -m deploy.ops" in capsys.readouterr().out.replace("ICC_USERNAME=finance ICC_PASSWORD=finance-pass ", "").replace(
            "DATABASE_URL=postgresql://icc:icc@127.0.0.1:5432/icc ", "")
    with pytest.raises(SystemExit):
        parse("dead-letters", "--help")
    assert "examples:\n  python -m deploy.ops dead-letters list" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parse("--help")
    top = capsys.readouterr().out
    assert all(name in top for name in ("dead-letters", "rebuild", "contributions", "status", "KAFKA_BOOTSTRAP_SERVERS"))


def test_replay_takes_offsets_or_all_but_not_both_nor_neither(capsys) -> None:
    args = parse("dead-letters", "replay", "--service", "finance", "--offset", "3:17", "0:4", "--offset", "9", "--dry-run")
    assert (args.offset, args.all, args.dry_run, args.service) == (["3:17", "0:4", "9"], False, True, "finance")
    assert parse("dead-letters", "replay", "--service", "travel", "--all").all
    for wrong in (["--service", "finance"], ["--service", "finance", "--all", "--offset", "1"], ["--all"],
                  ["--service", "accounting", "--all"]):
        with pytest.raises(SystemExit) as exit_:
            parse("dead-letters", "replay", *wrong)
        assert exit_.value.code == 2
    capsys.readouterr()


def test_the_prefix_and_the_sign_in_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("ICC_USERNAME", "treasurer")
    monkeypatch.setenv("ICC_PASSWORD", "s3cret")
    assert parse("status").prefix == "staging."
    assert parse("dead-letters", "list", "--service", "finance", "--prefix", "other.").prefix == "other."
    run = parse("contributions", "--year", "2027")
    assert (run.year, run.username, run.password, run.token) == (2027, "treasurer", "s3cret", None)
    monkeypatch.delenv("ICC_USERNAME")
    assert parse("contributions", "--year", "2027").username == "finance"


def test_rebuild_passes_its_options_through(monkeypatch) -> None:
    args = parse("rebuild", "finance", "--into", "sqlite+aiosqlite:///x.db", "--schema", "finance_rebuilt")
    assert args.options == ["--into", "sqlite+aiosqlite:///x.db", "--schema", "finance_rebuilt"]
    seen = []
    monkeypatch.setattr("services.finance.rebuild.main", lambda argv: seen.append(argv) or 0)
    assert main(["rebuild", "finance", "--into", "sqlite+aiosqlite:///x.db"]) == 0
    assert seen == [["--into", "sqlite+aiosqlite:///x.db"]]


def test_an_incomplete_kafka_login_says_what_to_set(monkeypatch, capsys) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    assert main(["dead-letters", "list", "--service", "finance"]) == 2
    assert "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in capsys.readouterr().err


def letter(partition: int, offset: int) -> DeadLetter:
    return DeadLetter(partition, offset, None, b"", [("dlq_topic", b"icc.travel.claims"), ("dlq_reason", b"x"), ("ce_id", b"e")])


def test_offsets_name_dead_letters_by_partition_and_a_bare_offset_only_when_unambiguous() -> None:
    letters = [letter(0, 4), letter(3, 17), letter(3, 4), letter(5, 9)]
    assert [d.ref for d in choose(letters, ["3:17", "9"])] == ["3:17", "5:9"]
    with pytest.raises(NotFound, match="partitions 0, 3"):
        choose(letters, ["4"])
    with pytest.raises(NotFound, match="no dead letter at 2:1"):
        choose(letters, ["2:1"])
    assert letters[0].original_headers == [("ce_id", b"e")]  # the dlq_* headers stay behind
