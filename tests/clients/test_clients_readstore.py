"""ReadStore (clients/readstore.c): the C loop's reads kept as the Python lists keep them.

The parse later must see exactly the reads the loop made, in order, with their receive
times, whatever their sizes (a read larger than the room left grows the store: nothing is
dropped) and however often they are taken; the C store and the Python ListStore must agree.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.sink import ListStore

readloop = pytest.importorskip("clients.readloop", reason="clients/readloop.c was not built")
ReadStore = readloop.ReadStore

reads = st.lists(st.tuples(st.binary(min_size=1, max_size=3000), st.integers(0, 2**62)),
                 max_size=60)


@settings(max_examples=200, deadline=None)
@given(reads, st.integers(1, 80), st.integers(1, 64), st.data())
def test_the_c_store_keeps_what_the_lists_keep(batch, limit, per_read, data):
    c_store, lists = ReadStore(limit, per_read), ListStore(limit)
    for chunk, t in batch:
        assert c_store.append(chunk, t) == lists.append(chunk, t)
        assert len(c_store) == len(lists)
        start = data.draw(st.integers(0, len(lists)))
        assert c_store.joined(start) == lists.joined(start)
    assert c_store.take() == lists.take()
    assert len(c_store) == 0 and c_store.joined() == b"" and c_store.take() == ([], [])


def test_full_at_the_limit_and_reusable_after_take():
    store = ReadStore(3, 2)  # room for 6 bytes: the reads below outgrow it
    assert [store.append(b"x" * 100, t) for t in (1, 2, 3)] == [False, False, True]
    assert store.joined(2) == b"x" * 100
    assert store.take() == ([b"x" * 100] * 3, [1, 2, 3])
    assert store.append(b"after", 9) is False and store.take() == ([b"after"], [9])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        ReadStore(0)
    store = ReadStore(4)
    store.append(b"one", 1)
    with pytest.raises(IndexError):
        store.joined(2)
    with pytest.raises(TypeError):
        store.append("text", 1)
