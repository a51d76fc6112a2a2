"""How ``weerbaar reconcile`` classifies what it finds: extra, missing, lag, twice."""

from __future__ import annotations

from tools.reconcile import OnStream, StoreSide, StreamSide, compare


def _store(*announced: tuple[int, int, str], stored: int = 0) -> StoreSide:
    return StoreSide(
        stored=stored or len(announced),
        announced={(n, i): msg_id for n, i, msg_id in announced},
    )


def _stream(*messages: tuple[int, int, str], foreign: int = 0) -> StreamSide:
    return StreamSide(
        [OnStream(seq, (n, i), msg_id) for seq, (n, i, msg_id) in enumerate(messages, 1)],
        foreign,
    )


def test_what_the_store_announces_and_the_stream_holds_agrees() -> None:
    report = compare(
        "intake", _stream((1, 0, "a"), (3, 0, "b")), _store((1, 0, "a"), (3, 0, "b")), (4, 0)
    )
    assert report.consistent
    assert (report.on_stream, report.announced, report.not_yet_published) == (2, 2, 0)


def test_another_event_under_a_position_the_store_holds_is_extra() -> None:
    # After a restore, the store has a different event at position 2: the stream's is extra,
    # and the store's own one is not on the stream.
    report = compare(
        "intake",
        _stream((1, 0, "a"), (2, 0, "lost")),
        _store((1, 0, "a"), (2, 0, "new")),
        (2, 0),
    )
    assert [m.msg_id for m in report.extra] == ["lost"]
    assert report.missing == [] and report.not_yet_published == 1
    assert not report.consistent


def test_a_position_beyond_the_store_is_extra() -> None:
    report = compare("intake", _stream((1, 0, "a"), (9, 1, "x")), _store((1, 0, "a")), (2, 0))
    assert [(m.sequence, m.position) for m in report.extra] == [(2, (9, 1))]
    assert "extra: x (seq 2, at 9/1)" in report.line()


def test_behind_the_relay_a_gap_is_missing_and_after_it_lag() -> None:
    report = compare(
        "intake",
        _stream((1, 0, "a")),
        _store((1, 0, "a"), (2, 0, "b"), (2, 1, "c"), (4, 0, "d")),
        (2, 1),
    )
    assert report.missing == [((2, 0), "b")]
    assert report.not_yet_published == 2
    assert not report.consistent
    assert "missing 1, not yet published 2" in report.line()


def test_only_lag_is_consistent() -> None:
    report = compare("intake", _stream(), _store((1, 0, "a"), (2, 0, "b")), (1, 0))
    assert report.consistent and report.not_yet_published == 2


def test_a_second_copy_and_foreign_messages_are_told_but_not_a_disagreement() -> None:
    report = compare(
        "intake", _stream((1, 0, "a"), (1, 0, "a"), foreign=2), _store((1, 0, "a")), (2, 0)
    )
    assert report.consistent
    assert report.twice == 1 and report.foreign == 2
    assert "twice 1" in report.line() and "not the relay's 2" in report.line()


def test_the_listing_is_bounded_the_counts_are_not() -> None:
    messages = [(n, 0, f"id{n}") for n in range(1, 13)]
    report = compare("intake", _stream(*messages), _store(), (1, 0))
    assert len(report.extra) == 12
    assert "extra 12" in report.line() and "and 7 more" in report.line()
