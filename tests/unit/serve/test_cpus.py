import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptgate.serve.cpus import cpu_list, parse_cpu_list, split_cpus


def test_server_gets_all_but_the_last_cpu_and_the_client_the_last():
    split = split_cpus([3, 0, 2, 1])
    assert split is not None
    assert split.server == (0, 1, 2) and split.client == (3,)
    assert split_cpus([0, 1]) == type(split)(server=(0,), client=(1,))
    assert split_cpus([5]) is None  # one CPU: nothing to isolate, nothing pinned


@given(st.sets(st.integers(min_value=0, max_value=300), min_size=1, max_size=40))
def test_cpu_list_round_trips_through_the_taskset_syntax(cpus):
    text = cpu_list(sorted(cpus))
    assert parse_cpu_list(text) == sorted(cpus)
    # compressed: no two adjacent pieces could have been one range
    assert len(text.split(",")) == sum(1 for c in cpus if c - 1 not in cpus)


def test_cpu_list_examples_and_bad_input():
    assert cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert parse_cpu_list(" 0-2, 5") == [0, 1, 2, 5]
    for bad in ("", "a", "3-1", "1-", "-1", "0,,1"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)
