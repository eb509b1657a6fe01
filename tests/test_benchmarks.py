import math

import numpy as np
import pandas as pd
import pytest

from dsmnas.envs.errors import ConfigError

from dsmnas.envs.benchmarks import (Benchmark, BudgetClock, NB201Benchmark, Query, load_nb201,
                                    make_benchmark)
from dsmnas.envs.config import EnvConfig
from dsmnas.envs.spaces import SearchSpace
from dsmnas.envs.spaces.nb201 import NUM_ARCHS, NB201Space, decode

SPACE = NB201Space()
# arch_index 1 of the shared table: cifar10 val_acc_12ep 82.834, sim_cost 133.933,
# test_acc_200ep 93.66; embedded val 90.7693 (mean of seeds), train time 2169.64 s.
ARCH1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def table_frame() -> pd.DataFrame:
    """A table in the shared table's format (cifar10 and cifar100, every architecture once),
    its numbers made up: val_acc_12ep = id / 1000, sim_cost_12ep_s = 1 + id % 7."""
    ids = np.arange(NUM_ARCHS)
    arch_str = [SPACE.format(t) for t in decode(ids)]
    return pd.concat([
        pd.DataFrame({"arch_str": arch_str, "dataset": dataset, "val_acc_12ep": ids / 1000,
                      "sim_cost_12ep_s": 1.0 + ids % 7})
        for dataset in ("cifar10", "cifar100")
    ], ignore_index=True)


def test_table_back_end_matches_the_shared_table(nb201_table):
    data = load_nb201(nb201_table)
    assert data.datasets == ("cifar10", "cifar100", "ImageNet16-120")
    bench = make_benchmark(EnvConfig(table=nb201_table))
    q = bench.query(SPACE.parse(ARCH1))
    assert (q.val_acc, q.cost_s, q.cached) == (82.834, 133.933, False)
    assert bench.report(SPACE.parse(ARCH1)) == pytest.approx(
        {"cifar10": 93.66, "cifar100": 70.2933, "ImageNet16-120": 44.0333}
    )
    assert bench.clock.budget_s == 25_000 and bench.val_metric == "val_acc_12ep"
    # every row of the table, through the dense arrays
    frame = pd.read_csv(nb201_table)
    c100 = frame[frame.dataset == "cifar100"].sample(200, random_state=0)
    b100 = NB201Benchmark(data, "cifar100")
    for row in c100.itertuples():
        q = b100.query(SPACE.parse(row.arch_str), charge=False)
        assert q.val_acc == row.val_acc_12ep


def test_embedded_back_end_has_no_test_accuracy():
    bench = make_benchmark(EnvConfig())
    q = bench.query(SPACE.parse(ARCH1))
    assert q.val_acc == pytest.approx(90.76933, abs=1e-4)
    assert q.cost_s == pytest.approx(2169.64, abs=0.01)
    assert bench.report(SPACE.parse(ARCH1)) == {}
    assert bench.source.startswith("embedded") and bench.clock.budget_s == 400_000


def test_clock_charges_repeats_and_refuses_to_cross_the_budget():
    clock = BudgetClock(budget_s=10.0)
    assert clock.charge(1, 4.0) == (True, 4.0, False)
    assert clock.charge(1, 4.0) == (True, 4.0, False)  # repeats are charged
    assert clock.charge(2, 4.0) == (False, 0.0, False)  # 12 > 10: refused, not charged
    assert (clock.sim_time_s, clock.queries) == (8.0, 2)
    assert clock.charge(3, 2.0) == (True, 2.0, False)  # exactly at the budget is fine
    cached = BudgetClock(budget_s=10.0, cache_queries=True)
    cached.charge(1, 4.0)
    assert cached.charge(1, 4.0) == (True, 0.0, True)
    assert (cached.sim_time_s, cached.queries, cached.cache_hits) == (4.0, 2, 1)
    by_count = BudgetClock(budget_queries=2)
    assert [by_count.charge(k, 1.0)[0] for k in range(3)] == [True, True, False]


def test_a_cached_search_that_only_repeats_itself_ends():
    # a small space, all of it seen: free repeats alone would never spend the budget
    clock = BudgetClock(budget_queries=5, cache_queries=True)
    clock.MAX_REPEATS_IN_A_ROW = 3
    assert clock.charge(1, 0.0) == (True, 0.0, False)
    assert [clock.charge(1, 0.0)[0] for _ in range(4)] == [True, True, True, False]
    assert clock.charge(2, 0.0) == (True, 0.0, False)  # something new resets the count
    assert clock.charge(1, 0.0) == (True, 0.0, True)
    twin = BudgetClock(budget_queries=5, cache_queries=True)
    twin.set_state(clock.get_state())
    assert twin.get_state() == clock.get_state()


@pytest.mark.parametrize("budget", [0, -5.0])
def test_bad_budget_names_the_value(budget):
    with pytest.raises(ValueError, match=f"budget_s must be > 0 seconds, got {budget}"):
        BudgetClock(budget_s=budget)


def test_bad_dataset_and_space_name_what_is_allowed():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*cifar10, cifar100, ImageNet16-120"):
        make_benchmark(EnvConfig(dataset="mnist"))
    with pytest.raises(ConfigError, match="unknown search space 'foo'; allowed: nb201, mobilenet"):
        make_benchmark(EnvConfig(space="foo"))


def test_a_table_file_is_read_into_its_dense_arrays(tmp_path, table_frame):
    path = tmp_path / "made.csv.gz"
    shuffled = table_frame.sample(frac=1.0, random_state=0)  # the row order does not matter
    shuffled.to_csv(path, index=False)
    data = load_nb201(path)
    assert data.datasets == ("cifar10", "cifar100") and data.test_acc == {}
    assert (data.val_metric, data.cost_metric) == ("val_acc_12ep", "sim_cost_12ep_s")
    for dataset in data.datasets:
        np.testing.assert_array_equal(data.val_acc[dataset], np.arange(NUM_ARCHS) / 1000)
        np.testing.assert_array_equal(data.cost_s[dataset], 1.0 + np.arange(NUM_ARCHS) % 7)
    bench = make_benchmark(EnvConfig(table=str(path), dataset="cifar100"))
    q = bench.query(SPACE.parse(ARCH1))
    i = table_frame.index[table_frame.arch_str == ARCH1][0]
    assert (q.val_acc, q.cost_s) == (i / 1000, 1.0 + i % 7)
    assert bench.clock.budget_s == 25_000 and bench.report(SPACE.parse(ARCH1)) == {}


def test_missing_and_malformed_tables(tmp_path, table_frame):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_nb201(tmp_path / "nope.csv")
    bad_cols = tmp_path / "cols.csv"
    pd.DataFrame({"arch_str": [ARCH1], "dataset": ["cifar10"]}).to_csv(bad_cols, index=False)
    with pytest.raises(ValueError, match=r"lacks the columns \['val_acc_12ep', 'sim_cost_12ep_s'\]"):
        load_nb201(bad_cols)
    partial = tmp_path / "partial.csv.gz"
    table_frame.head(100).to_csv(partial, index=False)
    with pytest.raises(ValueError, match="100 distinct architectures in 100 rows for cifar10"):
        load_nb201(partial)
    garbage = tmp_path / "garbage.csv.gz"
    garbage.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a readable CSV"):
        load_nb201(garbage)
    bad_arch = tmp_path / "bad_arch.csv"
    frame = table_frame.query("dataset == 'cifar10'").copy()
    frame.iloc[5, frame.columns.get_loc("arch_str")] = "|conv~0|"
    frame.to_csv(bad_arch, index=False)
    with pytest.raises(ValueError, match=r"invalid arch_str '\|conv~0\|'"):
        load_nb201(bad_arch)


def test_a_table_with_one_dataset_serves_only_it(tmp_path, table_frame):
    one = tmp_path / "c10.csv.gz"
    table_frame.query("dataset == 'cifar10'").to_csv(one, index=False)
    data = load_nb201(one)
    assert data.datasets == ("cifar10",)
    with pytest.raises(ValueError, match="unknown dataset 'cifar100'.*allowed: cifar10"):
        NB201Benchmark(data, "cifar100")


# -- the base class owns the clock: a plug-in writes _val and cost_s, nothing about charging ----

class TinySpace(SearchSpace):
    """2 positions x 3 choices; the text form is the digits, e.g. '12'."""

    name, L, C = "tiny", 2, 3

    def parse(self, text):
        return np.array([int(c) for c in text], dtype=np.int64)

    def format(self, tokens):
        return "".join(str(int(t)) for t in tokens)


class TinyBenchmark(Benchmark):
    """val = 10 x the first token + the second; a query costs 1 s + the token sum."""

    space = TinySpace()
    dataset = source = "tiny"
    val_metric = "tiny_val"

    def __init__(self):
        self.asked = []
        """(architectures, cached, charged) of every `_answers` call."""

    def _val(self, tokens):
        return 10.0 * tokens[0] + tokens[1]

    def _answers(self, batch, cached, charged):
        self.asked.append(([self.space.format(t) for t in batch], list(cached), charged))
        return super()._answers(batch, cached, charged)

    def cost_s(self, tokens):
        return 1.0 + float(np.sum(tokens))

    def report(self, tokens):
        return {}


TINY = TinySpace()


def test_the_base_class_charges_queries_and_refuses_them_over_the_budget():
    bench = TinyBenchmark()
    clock = bench.start_clock(EnvConfig(budget_s=10.0))
    assert bench.clock is clock and (clock.budget_s, clock.budget_queries) == (10.0, None)
    a, b, c = TINY.parse("12"), TINY.parse("01"), TINY.parse("22")  # cost 4, 2 and 5 s
    # an initial center (charge=False): answered, nothing charged
    assert bench.query(a, charge=False) == Query(12.0, 0.0, False)
    assert (clock.sim_time_s, clock.queries, clock.cache_hits) == (0.0, 0, 0)
    assert bench.query(a) == Query(12.0, 4.0, False)
    assert bench.query(a) == Query(12.0, 4.0, False)  # a repeat is charged again
    assert (clock.sim_time_s, clock.queries, clock.cache_hits) == (8.0, 2, 0)
    assert bench.query(c) is None  # 8 + 5 > 10: refused, nothing charged
    assert (clock.sim_time_s, clock.queries) == (8.0, 2)
    assert bench.query(b) == Query(1.0, 2.0, False)  # ends exactly at the budget
    assert (clock.sim_time_s, clock.queries) == (10.0, 3)
    assert bench.query(b) is None
    assert bench.query(b, charge=False) == Query(1.0, 0.0, False)  # the clock is not asked
    assert bench.asked == [(["12"], [False], False), (["12"], [False], True),
                           (["12"], [False], True), (["01"], [False], True),
                           (["01"], [False], False)]


def test_the_base_class_builds_the_clock_from_the_settings():
    bench = TinyBenchmark()
    cached = bench.start_clock(EnvConfig(budget_s=10.0, cache_queries=True))
    a = TINY.parse("12")
    assert [bench.query(a), bench.query(a)] == [Query(12.0, 4.0, False), Query(12.0, 0.0, True)]
    assert (cached.sim_time_s, cached.queries, cached.cache_hits) == (4.0, 2, 1)
    # the space's spec counts queries: budget_queries is the budget, and costs do not bind
    by_count = bench.start_clock(EnvConfig(space="tests.fixture_spaces:TOY", budget_queries=2))
    assert bench.clock is by_count and (by_count.budget_s, by_count.budget_queries) == (None, 2)
    assert [bench.query(TINY.parse("22")) is None for _ in range(3)] == [False, False, True]
    assert (by_count.sim_time_s, by_count.queries) == (10.0, 2)
    # no budget in the settings: the benchmark's default, else a ConfigError
    with pytest.raises(ConfigError, match="a budget is needed"):
        bench.start_clock(EnvConfig())
    bench.default_budget = 7.0
    assert bench.start_clock(EnvConfig()).budget_s == 7.0


def test_query_batch_runs_on_the_earliest_free_workers_and_answers_in_one_call():
    bench = TinyBenchmark()
    clock = bench.start_clock(EnvConfig(budget_s=10.0, workers=2, cache_queries=True))
    batch = [TINY.parse(t) for t in ("12", "01", "12", "22", "20", "21")]  # 4, 2, -, 5, 3, 4 s
    answers = bench.query_batch(batch)
    assert [a[0] for a in answers[:5]] == [
        Query(12.0, 4.0, False), Query(1.0, 2.0, False), Query(12.0, 0.0, True),
        Query(22.0, 5.0, False), Query(20.0, 3.0, False)]
    # worker 0: 0-4, then 4-7; worker 1: 0-2, then 2-7; the repeat runs on none, at 2 s
    timings = [a[1] for a in answers[:5]]
    assert [t for j, t in enumerate(timings) if j != 2] == [
        (0, 0.0, 4.0), (1, 0.0, 2.0), (1, 2.0, 7.0), (0, 4.0, 7.0)]
    assert math.isnan(timings[2][0]) and timings[2][1:] == (2.0, 2.0)
    assert answers[5] is None  # 7 + 4 > 10 on the earliest free worker
    assert (clock.sim_time_s, clock.queries, clock.cache_hits) == (7.0, 5, 1)
    # the answered ones in one call, with which of them were free repeats
    assert bench.asked == [(["12", "01", "12", "22", "20"], [False, False, True, False, False],
                            True)]


def test_a_benchmark_without_a_started_clock_or_with_its_own_says_so():
    bench = TinyBenchmark()
    with pytest.raises(RuntimeError, match="TinyBenchmark has no clock yet: build it with "
                                           r"make_benchmark\(cfg\)"):
        bench.query(TINY.parse("12"))
    with pytest.raises(ConfigError, match="TinyBenchmark sets self.clock: since dsmnas 0.4 the "
                                          "Benchmark base class builds and charges the clock"):
        bench.clock = BudgetClock(budget_s=10.0)
