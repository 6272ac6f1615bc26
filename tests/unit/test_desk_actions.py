"""The desk's actions, as reporting keeps and tells them: each once, the trouble at hand's
only, and the handling they add up to."""

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from contracts.events import DeskAction, Response
from reporting.actions import DeskLog, handling_of, incident_subject, point_subject
from reporting.reports import described

AT = datetime(2026, 12, 5, 3, 12, tzinfo=UTC)  # 10:12 in Viet Nam


def action(response: Response, minute: int, by: str = "an", **fields: str) -> DeskAction:
    return DeskAction(
        id=uuid.uuid4().hex,
        session_code="S1",
        subject=point_subject("X38001"),
        response=response,
        by=by,
        at=AT + timedelta(minutes=minute),
        **fields,
    )


def test_an_action_read_twice_is_kept_once_and_in_the_order_done() -> None:
    desk = DeskLog()
    later, earlier = action(Response.RESOLVE, 5), action(Response.ACKNOWLEDGE, 1)
    assert desk.put(later) and desk.put(earlier)
    assert not desk.put(later)
    assert desk.of("S1", point_subject("X38001")) == [earlier, later]
    assert desk.of("S1", point_subject("X38001"), since=AT + timedelta(minutes=2)) == [later]
    assert desk.of("S1", incident_subject("province", "38")) == []
    assert desk.of("S2", point_subject("X38001")) == []
    assert desk.session("S1") == [earlier, later]


def test_the_handling_names_who_took_it_whose_it_is_what_was_noted_and_who_resolved_it() -> None:
    taken = [
        action(Response.ACKNOWLEDGE, 1, by="an"),
        action(Response.ACKNOWLEDGE, 2, by="binh"),
        action(Response.ASSIGN, 3, assignee="binh"),
        action(Response.ANNOTATE, 4, note="power cut"),
        action(Response.ASSIGN, 5, assignee="chi"),
        action(Response.ANNOTATE, 6, note="back at 10:30"),
    ]
    handling = handling_of(taken)
    assert (handling.acknowledged_by, handling.acknowledged_at) == ("an", taken[0].at)
    assert handling.assignee == "chi"
    assert [n.note for n in handling.notes] == ["power cut", "back at 10:30"]
    assert handling.resolved_by is None
    resolved = handling_of([*taken, action(Response.RESOLVE, 7, by="chi")])
    assert (resolved.resolved_by, resolved.resolved_at) == ("chi", AT + timedelta(minutes=7))
    reopened = handling_of(
        [*taken, action(Response.RESOLVE, 7), action(Response.ANNOTATE, 8, note="again")]
    )
    assert reopened.resolved_by is None
    assert handling_of([]).acknowledged_by is None


@given(st.permutations(range(6)))
def test_the_handling_is_the_same_in_whatever_order_they_are_read(order: list[int]) -> None:
    taken = [
        action(Response.ACKNOWLEDGE, 1),
        action(Response.ASSIGN, 2, assignee="binh"),
        action(Response.ANNOTATE, 3, note="one"),
        action(Response.ANNOTATE, 4, note="two"),
        action(Response.RESOLVE, 5),
        action(Response.ANNOTATE, 6, note="three"),
    ]
    desk = DeskLog()
    for index in order:
        desk.put(taken[index])
    assert handling_of(desk.of("S1", point_subject("X38001"))) == handling_of(taken)


def test_the_report_says_what_was_done_in_viet_nam_time() -> None:
    taken = [
        action(Response.ACKNOWLEDGE, 1, by="an"),
        action(Response.ASSIGN, 2, by="an", assignee="binh"),
        action(Response.ANNOTATE, 3, by="binh", note="called the focal person, power cut"),
        action(Response.RESOLVE, 19, by="binh"),
    ]
    assert described(taken) == (
        "10:13 acknowledged by an; 10:14 assigned to binh by an; "
        "10:15 note by binh: called the focal person, power cut; 10:31 resolved by binh"
    )
    assert described([]) == ""
