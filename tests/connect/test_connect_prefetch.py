"""OneAhead, the one-batch-ahead producer of the Connect import, on its own: order, bound, errors, stopping."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

from airflow_provider_norce.connect.prefetch import OneAhead


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "test-one-ahead"]


@pytest.fixture(autouse=True)
def no_worker_left() -> Iterator[None]:
    yield
    assert workers() == []


class Counted:
    """An endless source that counts how many values were asked of it."""

    def __init__(self) -> None:
        self.asked = 0

    def __iter__(self) -> Iterator[int]:
        for value in itertools.count():
            self.asked += 1
            yield value


def test_values_arrive_in_order_and_the_producer_is_never_more_than_one_ahead():
    source = Counted()
    seen = []
    with OneAhead(lambda checked: itertools.islice(checked(iter(source)), 50), "test-one-ahead") as values:
        for value in values:
            # the consumer holds ``value``; the producer may have asked for one more, never two
            assert source.asked <= value + 2
            seen.append(value)
    assert seen == list(range(50))


def test_an_error_arrives_after_the_values_before_it_unchanged():
    problem = ValueError("Task 't': items_path 'x.jsonl': line 4 is not valid JSON (...)")

    def produce(checked):
        yield from checked(iter([1, 2, 3]))
        raise problem

    got = []
    with pytest.raises(ValueError) as raised, OneAhead(produce, "test-one-ahead") as values:
        for value in values:
            got.append(value)
    assert got == [1, 2, 3]
    assert raised.value is problem


def test_leaving_early_stops_the_producer_at_its_next_value():
    source = Counted()
    with OneAhead(lambda checked: checked(iter(source)), "test-one-ahead") as values:
        for value in values:
            if value == 3:
                break
    assert source.asked <= 6  # an endless source, stopped: not read on


def test_an_exception_in_the_consumer_stops_and_joins_the_producer():
    source = Counted()
    with (
        pytest.raises(KeyboardInterrupt),
        OneAhead(lambda checked: checked(iter(source)), "test-one-ahead") as values,
    ):
        for value in values:
            if value == 2:
                raise KeyboardInterrupt
    assert source.asked <= 5


def test_the_values_are_iterated_once():
    with OneAhead(lambda checked: checked(iter([1])), "test-one-ahead") as values:
        assert list(values) == [1]
        with pytest.raises(RuntimeError, match="once only"):
            list(values)
