"""The organisation registry: first-seen positions, the two caps, and labels for a commit's
new organisations that match what registering them afterwards gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.live.orgs import OTHER_ORG, OrgLabeller, OrgLabels, OrgRegistry


def registry(live: int, series: int, *known: str) -> OrgRegistry:
    orgs = OrgRegistry(max_live_orgs=live, max_org_series=series)
    orgs.load(known, len(known))
    return orgs


def test_orgs_registry_holds_only_its_capacity() -> None:
    orgs = registry(3, 2)
    orgs.register(["a", "b", "c", "d", "e"], added=5)
    assert (orgs.capacity, len(orgs), orgs.live, orgs.seen) == (3, 3, 3, 5)
    assert [orgs.position(o) for o in "abcde"] == [0, 1, 2, None, None]
    orgs.register(["d", "f"], added=1)  # storage knew d already
    assert (len(orgs), orgs.seen) == (3, 6)


def test_orgs_capacity_is_the_larger_cap() -> None:
    assert OrgRegistry(max_live_orgs=10, max_org_series=100).capacity == 100
    assert OrgRegistry(max_live_orgs=10_000, max_org_series=100).capacity == 10_000


def test_orgs_labels_by_position_against_each_cap() -> None:
    orgs = registry(2, 3, "a", "b", "c", "d")
    assert orgs.labels("a", 0) == OrgLabels("a", "a")
    assert orgs.labels("c", 2) == OrgLabels("c", OTHER_ORG)  # own series, shared live window
    assert orgs.labels("d", None) == OrgLabels(OTHER_ORG, OTHER_ORG)
    assert [orgs.series_label(o) for o in ("", "a", "c", "d", "zz")] == [
        "", "a", "c", OTHER_ORG, OTHER_ORG,
    ]  # fmt: skip


def test_orgs_live_scope_tells_unseen_from_capped() -> None:
    roomy = registry(3, 3, "a")
    assert [roomy.live_scope(o) for o in ("a", "new", OTHER_ORG)] == ["a", None, OTHER_ORG]
    # Once max_live_orgs are held, an org it lacks is beyond the live cap whether storage
    # has seen it or not (the registry itself may still have room for the series cap).
    for capped in (registry(1, 2, "a", "b"), registry(1, 5, "a", "b")):
        assert [capped.live_scope(o) for o in ("a", "b", "new", OTHER_ORG)] == [
            "a", OTHER_ORG, OTHER_ORG, OTHER_ORG,
        ]  # fmt: skip


def test_orgs_load_keeps_order_and_count() -> None:
    orgs = registry(2, 2, "x", "y")
    orgs.load(["b", "a"], 7)
    assert (orgs.position("b"), orgs.position("a"), orgs.position("x"), orgs.seen) == (
        0,
        1,
        None,
        7,
    )


def test_orgs_labeller_numbers_new_orgs_in_arrival_order() -> None:
    orgs = registry(3, 2, "a")
    label = OrgLabeller(orgs)
    got = [label(o) for o in ("b", "a", "c", "b", "d")]
    assert got == [
        OrgLabels("b", "b"),  # position 1
        OrgLabels("a", "a"),
        OrgLabels(OTHER_ORG, "c"),  # position 2: beyond the series cap, inside the live cap
        OrgLabels("b", "b"),
        OrgLabels(OTHER_ORG, OTHER_ORG),  # no room left
    ]
    assert label.unregistered == ["b", "c", "d"]


@settings(max_examples=150, deadline=None, database=None)
@given(
    commits=st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=6), max_size=8),
    live=st.integers(1, 5),
    series=st.integers(1, 5),
)
def test_orgs_labels_match_full_first_seen_order(
    commits: list[list[str]], live: int, series: int
) -> None:
    """Against a reference that remembers every org: the capped registry labels each org of
    each commit the same, and stays within its capacity."""
    orgs = registry(live, series)
    everyone: list[str] = []
    for commit in commits:
        label = OrgLabeller(orgs)
        for org in commit:
            if org not in everyone:
                everyone.append(org)
            position = everyone.index(org)
            expected = OrgLabels(
                org if position < series else OTHER_ORG, org if position < live else OTHER_ORG
            )
            assert label(org) == expected
        stored_before = orgs.seen
        added = len(
            [o for o in dict.fromkeys(label.unregistered) if everyone.index(o) >= stored_before]
        )
        orgs.register(label.unregistered, added)
        assert len(orgs) == min(len(everyone), max(live, series))
        assert orgs.seen == len(everyone)
