import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sysgym.envs.vm_resched import fragment_rate


def test_issue_example_is_per_numa_node_not_per_pm():
    # NUMA free CPUs (10, 10) and (16, 33): (10 + 10 + 0 + 1) / 69.
    assert fragment_rate(np.array([10, 10, 16, 33])) == 21 / 69
    pooled = ((10 + 10) % 16 + (16 + 33) % 16) / 69
    assert fragment_rate(np.array([10, 10, 16, 33])) != pooled


def test_nothing_free_is_zero_not_a_division_by_zero():
    assert fragment_rate(np.zeros(6, np.int64)) == 0.0


def test_reference_size_is_a_parameter():
    assert fragment_rate(np.array([8, 8]), unit=8) == 0.0
    assert fragment_rate(np.array([8, 8]), unit=16) == 1.0


@given(st.lists(st.integers(0, 88), min_size=2, max_size=40))
def test_fragment_rate_is_a_fraction(free):
    fr = fragment_rate(np.array(free))
    assert 0.0 <= fr <= 1.0
    if sum(free) and all(f % 16 == 0 for f in free):
        assert fr == 0.0
