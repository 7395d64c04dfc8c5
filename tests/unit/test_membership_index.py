"""The ICC INDEX rules: the questionnaire as data, answers checked, scores, ranking, the analysis queue."""

from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from uuid import uuid4

import pytest

from services.common.refusals import NotFound
from services.membership import index
from services.membership.index import IndexScore, Indexed, InvalidAnswers, Waiting, analysis_order, compare, peer_group

V1 = index.questionnaire(1)
CORE_AREAS = [
    "commitment", "education", "neighbourhoods", "public_services", "business_and_labour_market",
    "cultural_and_civil_life", "public_space", "mediation_and_conflict_resolution", "language",
    "media_and_communication", "international_outlook", "intelligence_competence", "welcoming_newcomers",
    "leadership_and_citizenship", "anti_discrimination",
]


def best(q) -> str:
    return max(q.options, key=q.options.get)


def worst(q) -> str:
    return min(q.options, key=q.options.get)


def answers(choose=best, *, optional: bool = False, **overrides: str) -> dict[str, str]:
    chosen = {q.code: choose(q) for area in V1.areas if area.core or optional for q in area.questions}
    return {**chosen, **{code.replace("__", "."): answer for code, answer in overrides.items()}}


def test_the_questionnaire_has_every_policy_area_of_the_domain_with_participation_and_interaction_optional() -> None:
    assert [a.code for a in V1.areas if a.core] == CORE_AREAS
    assert [a.code for a in V1.areas if not a.core] == ["participation", "interaction"]
    assert all(a.weight > 0 for a in V1.areas if a.core) and all(a.weight is None for a in V1.areas if not a.core)
    assert all(len(a.questions) >= 2 for a in V1.areas)
    assert index.current_version() == 1 and index.questionnaire() is V1


def test_an_unknown_questionnaire_version_is_refused() -> None:
    with pytest.raises(NotFound, match="no INDEX questionnaire version 9; known: \\[1\\]"):
        index.questionnaire(9)


def test_answers_that_do_not_fit_are_refused_with_every_problem_named_by_question() -> None:
    bad = answers(commitment__2="maybe", participation__1="yes")
    del bad["education.3"]
    bad["commitment.99"] = "yes"
    with pytest.raises(InvalidAnswers) as refused:
        V1.check(bad)
    problems = refused.value.problems
    assert set(problems) == {"commitment.2", "education.3", "commitment.99", "participation.2"}
    assert "not one of: yes_with_budget, yes_without_budget, no" in problems["commitment.2"]
    assert "core area 'Education' must be answered" in problems["education.3"]
    assert "no such question" in problems["commitment.99"]
    assert "answered in full or not at all" in problems["participation.2"]


def test_full_marks_score_100_everywhere_and_no_points_score_0() -> None:
    top = V1.score(answers(best, optional=True))
    assert set(top.areas.values()) == {Decimal("100.0")} and top.overall == Decimal("100.0")
    bottom = V1.score(answers(worst))
    assert set(bottom.areas.values()) == {Decimal("0.0")} and bottom.overall == Decimal("0.0")


def test_an_area_scores_its_points_over_its_maximum_and_the_index_is_the_weighted_mean_of_core_areas() -> None:
    # commitment: yes (2) + yes_without_budget (1) + no (0) out of 2 + 3 + 2 = 3/7
    score = V1.score(answers(commitment__1="yes", commitment__2="yes_without_budget", commitment__3="no"))
    assert score.areas["commitment"] == Decimal("42.9")
    weights = {a.code: Fraction(a.weight) for a in V1.areas if a.core}
    assert weights["commitment"] == 2 and sum(weights.values()) == Fraction(35, 2)
    expected = (2 * Fraction(300, 7) + (sum(weights.values()) - 2) * 100) / sum(weights.values())  # 93.469...
    assert score.overall == Decimal("93.5") and round(float(expected), 1) == 93.5


def test_weights_matter_a_heavy_area_costs_more_than_a_light_one() -> None:
    weak_commitment = V1.score(answers(commitment__1="no", commitment__2="no", commitment__3="no"))  # weight 2
    weak_language = V1.score(answers(language__1="no", language__2="no", language__3="no"))  # weight 1
    assert weak_commitment.areas["commitment"] == weak_language.areas["language"] == Decimal("0.0")
    assert weak_commitment.overall < weak_language.overall


def test_optional_areas_are_scored_but_never_enter_the_overall_index() -> None:
    without = V1.score(answers())
    with_optional = V1.score(answers(optional=True, participation__1="no", participation__2="no"))
    assert "participation" not in without.areas
    assert with_optional.areas["participation"] == Decimal("0.0") and with_optional.areas["interaction"] == Decimal("100.0")
    assert with_optional.overall == without.overall


def test_scores_survive_storage_exactly() -> None:
    score = V1.score(answers(commitment__2="no"))
    assert IndexScore.from_data(score.as_data()) == score


# --- ranking ------------------------------------------------------------------------------------


def indexed(overall: str, population: int = 300_000, share: str | None = "0.15", **areas: str) -> Indexed:
    return Indexed(uuid4(), population, Decimal(share) if share else None,
                   IndexScore({"commitment": Decimal(overall), **{k: Decimal(v) for k, v in areas.items()}}, Decimal(overall)))


@pytest.mark.parametrize(
    ("population", "share", "population_band", "diversity_band"),
    [
        (99_999, "0.0999", "under 100 000 inhabitants", "under 10% foreign-born"),
        (100_000, "0.10", "100 000 to 199 999 inhabitants", "10% to under 20% foreign-born"),
        (499_999, "0.1999", "200 000 to 499 999 inhabitants", "10% to under 20% foreign-born"),
        (500_000, "0.20", "500 000 inhabitants or more", "20% foreign-born or more"),
        (12_000, None, "under 100 000 inhabitants", None),
    ],
)
def test_peer_groups_are_population_and_foreign_born_share_bands(population, share, population_band, diversity_band) -> None:
    group = peer_group(population, Decimal(share) if share else None)
    assert (group.population_band, group.diversity_band) == (population_band, diversity_band)


def test_a_city_is_ranked_against_the_network_and_against_cities_of_similar_size_and_diversity() -> None:
    me = indexed("60.0", 300_000, "0.15")
    peer_above = indexed("70.0", 250_000, "0.12")
    peer_below = indexed("50.0", 450_000, "0.18")
    bigger_above = indexed("90.0", 800_000, "0.15")
    more_diverse_above = indexed("80.0", 300_000, "0.35")
    unknown_share = indexed("95.0", 300_000, None)
    comparison = compare(me, [peer_above, peer_below, bigger_above, more_diverse_above, unknown_share])
    assert (comparison.network.rank, comparison.network.out_of) == (5, 6)
    assert (comparison.peers.rank, comparison.peers.out_of) == (2, 3)
    assert comparison.peers.average == Decimal("60.0")
    assert comparison.network.average == Decimal("74.2")  # 445 / 6


def test_equal_scores_share_a_rank_and_the_city_itself_is_counted_once() -> None:
    me = indexed("70.0")
    tied, above = indexed("70.0"), indexed("71.0")
    comparison = compare(me, [me, tied, above])
    assert (comparison.network.rank, comparison.network.out_of) == (2, 3)


def test_a_city_whose_share_is_unknown_is_compared_by_size_only() -> None:
    me = indexed("60.0", 300_000, None)
    comparison = compare(me, [indexed("70.0", 300_000, "0.05"), indexed("80.0", 300_000, "0.40"), indexed("90.0", 90_000, "0.40")])
    assert comparison.peer_group.diversity_band is None
    assert (comparison.peers.rank, comparison.peers.out_of) == (3, 3)


def test_area_averages_let_a_city_compare_each_area() -> None:
    me = indexed("60.0", language="40.0")
    comparison = compare(me, [indexed("80.0", language="80.0"), indexed("70.0")])
    assert comparison.network.area_averages["language"] == Decimal("60.0")  # only cities that scored it
    assert comparison.network.area_averages["commitment"] == Decimal("70.0")


# --- the analysis queue -------------------------------------------------------------------------


def waiting(name: str, submitted: str, statement: str | None, number: int) -> Waiting:
    return Waiting(uuid4(), uuid4(), name, datetime.fromisoformat(submitted).replace(tzinfo=UTC), number,
                   date.fromisoformat(statement) if statement else None)


def test_cities_that_had_signed_the_statement_of_intent_come_first_then_first_submitted_first_analysed() -> None:
    queue = [
        waiting("Unsigned early", "2026-01-10T09:00", None, 1),
        waiting("Signed late", "2026-03-01T09:00", "2026-02-01", 2),
        waiting("Signed after submitting", "2026-01-05T09:00", "2026-02-20", 3),
        waiting("Signed early", "2026-02-15T09:00", "2026-02-15", 4),  # signed the same day: counts
        waiting("Unsigned late", "2026-02-01T09:00", None, 5),
    ]
    order = analysis_order(queue)
    assert [place.waiting.city_name for place in order] == [
        "Signed early", "Signed late", "Signed after submitting", "Unsigned early", "Unsigned late",
    ]
    assert [place.position for place in order] == [1, 2, 3, 4, 5]
    assert [place.priority for place in order] == [True, True, False, False, False]
    assert order[0].reason.startswith("statement of intent signed on 2026-02-15, before submitting on 2026-02-15")
    assert order[2].reason.startswith("statement of intent signed on 2026-02-20, after submitting on 2026-01-05")
    assert order[3].reason.startswith("no statement of intent signed when submitting on 2026-01-10")


def test_submissions_at_the_same_instant_keep_their_arrival_order() -> None:
    same = "2026-03-01T09:00:00"
    order = analysis_order([waiting("Second", same, None, 8), waiting("First", same, None, 7)])
    assert [place.waiting.city_name for place in order] == ["First", "Second"]


def test_a_submission_keeps_its_answers_and_is_scored_when_analysed() -> None:
    submission = index.IndexSubmission.submit(uuid4(), 1, answers(), datetime(2026, 3, 1, tzinfo=UTC))
    assert submission.score is None
    score = submission.analyse(date(2026, 3, 20), "M. Rossi")
    assert submission.score == score and score.overall == Decimal("100.0") and submission.analysed_on == date(2026, 3, 20)
    with pytest.raises(InvalidAnswers):
        index.IndexSubmission.submit(uuid4(), 1, {"commitment.1": "yes"}, datetime(2026, 3, 1, tzinfo=UTC))
