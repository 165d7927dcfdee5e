"""The case-event channel's messages: one per case, or a router batch's as one list."""

from __future__ import annotations

import json

import pytest

from hotline.queue.signals import case_event, case_events, each_case_event


def test_a_batch_of_case_events_comes_apart_as_it_went_in() -> None:
    events = [case_event(f"CODE{i}", "created") for i in range(3)]
    assert each_case_event(case_events(events)) == events
    assert each_case_event(case_events(events[:1])) == events[:1]  # one goes as it is
    assert [json.loads(e) for e in each_case_event(case_events(events))][2] == {
        "code": "CODE2",
        "kind": "created",
    }


@pytest.mark.parametrize("garbled", ["[", "[1,", '["a", {]', "[\x00]"])
def test_a_garbled_list_is_dropped_not_raised(garbled: str) -> None:
    assert each_case_event(garbled) == []
