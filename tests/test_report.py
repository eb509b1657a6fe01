"""dsmnas.experiments.report on hand-made runs tables: exact statistics, layout, plots (no Ray)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dsmnas.experiments import report

DSM_C10 = [94.0, 94.2, 94.4]
RND_C10 = [93.0, 93.5, 94.0]
DSM_C100 = [72.0, 73.0, 74.0]
RND_C100 = [70.0, 70.0, 71.5]


def runs_table() -> pd.DataFrame:
    rows = []
    for i in range(3):
        rows.append(dict(method="dsm", seed=i, status="ok", arch=f"a{i}", val_acc=90.0 + i,
                         test_acc_cifar10=DSM_C10[i], test_acc_cifar100=DSM_C100[i],
                         queries=100 + 10 * i, sim_time_s=25_000.0, wall_time_s=4.0 + i,
                         error=""))
    for i in range(3):
        rows.append(dict(method="random", seed=i, status="ok", arch=f"b{i}", val_acc=88.0,
                         test_acc_cifar10=RND_C10[i], test_acc_cifar100=RND_C100[i],
                         queries=200, sim_time_s=24_000.0, wall_time_s=1.0, error=""))
    rows.append(dict(method="random", seed=3, status="failed", arch="", val_acc=np.nan,
                     test_acc_cifar10=np.nan, test_acc_cifar100=np.nan, queries=np.nan,
                     sim_time_s=np.nan, wall_time_s=np.nan,
                     error="RuntimeError: worker died (3 attempts)"))
    rows.append(dict(method="single", seed=0, status="ok", arch="c0", val_acc=85.0,
                     test_acc_cifar10=93.0, test_acc_cifar100=70.0, queries=50,
                     sim_time_s=1000.0, wall_time_s=2.0, error=""))
    return pd.DataFrame(rows)


def test_summary_statistics_are_exact():
    s = report.summarize(runs_table()).set_index("method")
    assert list(s.index) == ["dsm", "random", "single"]  # the order the methods came in
    assert s.loc["dsm", ["n_runs", "n_ok", "n_failed"]].tolist() == [3, 3, 0]
    assert s.loc["random", ["n_runs", "n_ok", "n_failed"]].tolist() == [4, 3, 1]
    assert s.loc["dsm", "test_acc_cifar10_mean"] == pytest.approx(94.2)
    assert s.loc["dsm", "test_acc_cifar10_std"] == pytest.approx(0.2)  # sample std, ddof 1
    assert s.loc["random", "test_acc_cifar10_mean"] == pytest.approx(93.5)  # failed run excluded
    assert s.loc["random", "test_acc_cifar10_std"] == pytest.approx(0.5)
    assert s.loc["random", "test_acc_cifar100_std"] == pytest.approx(math.sqrt(0.75))
    assert s.loc["dsm", "val_acc_mean"] == pytest.approx(91.0)
    assert s.loc["dsm", "val_acc_std"] == pytest.approx(1.0)
    assert s.loc["dsm", "queries_mean"] == pytest.approx(110.0)
    assert s.loc["dsm", "wall_time_s_mean"] == pytest.approx(5.0)
    assert s.loc["random", "queries_mean"] == pytest.approx(200.0)
    # one run: a mean but no std, and no t-test
    assert s.loc["single", "test_acc_cifar10_mean"] == 93.0
    assert math.isnan(s.loc["single", "test_acc_cifar10_std"])
    assert math.isnan(s.loc["single", "test_acc_cifar10_p"])


def test_welch_p_value_is_scipys_and_the_textbook_formula():
    s = report.summarize(runs_table()).set_index("method")
    for col, dsm, rnd in [("test_acc_cifar10", DSM_C10, RND_C10),
                          ("test_acc_cifar100", DSM_C100, RND_C100)]:
        expected = stats.ttest_ind(rnd, dsm, equal_var=False).pvalue
        assert s.loc["random", f"{col}_p"] == pytest.approx(expected, rel=1e-12)
        # Welch by hand: t and the Welch-Satterthwaite degrees of freedom
        va, vb = np.var(rnd, ddof=1) / 3, np.var(dsm, ddof=1) / 3
        t = (np.mean(rnd) - np.mean(dsm)) / math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
        assert s.loc["random", f"{col}_p"] == pytest.approx(2 * stats.t.sf(abs(t), df))
        assert math.isnan(s.loc["dsm", f"{col}_p"])  # the reference is not tested against itself
    # cifar10: t = -0.7 / sqrt(0.25/3 + 0.04/3) = -2.251 on 2.62 degrees of freedom
    assert s.loc["random", "test_acc_cifar10_p"] == pytest.approx(0.1224, abs=1e-4)


def test_without_the_reference_there_are_no_p_values():
    runs = runs_table()
    runs = runs[runs["method"] != "dsm"]
    s = report.summarize(runs)
    assert s["test_acc_cifar10_p"].isna().all()
    assert "`dsm` is not among the compared methods" in report.summary_markdown(s, runs)


def test_markdown_is_table_ii_layout_and_lists_failures():
    runs = runs_table()
    md = report.summary_markdown(report.summarize(runs), runs, title="NB201", notes=["a note"])
    lines = md.splitlines()
    assert lines[0] == "# NB201" and "a note" in lines
    i = lines.index("| method | runs | failed | val | cifar10 | cifar100 | queries | wall s |")
    assert lines[i + 1] == "|---|---|---|---|---|---|---|---|"
    assert lines[i + 2] == "| dsm | 3 | 0 | 91.00 ± 1.00 | 94.20 ± 0.20 | 73.00 ± 1.00 | 110.0 | 5.00 |"
    assert lines[i + 3] == "| random | 4 | 1 | 88.00 ± 0.00 | 93.50 ± 0.50 | 70.50 ± 0.87 | 200.0 | 1.00 |"
    assert lines[i + 4] == "| single | 1 | 0 | 85.00 ± – | 93.00 ± – | 70.00 ± – | 50.0 | 2.00 |"
    j = lines.index("## Welch t-test against dsm (two-sided p-value)")
    assert lines[j + 2] == "| method | cifar10 | cifar100 |"
    p10 = stats.ttest_ind(RND_C10, DSM_C10, equal_var=False).pvalue
    p100 = stats.ttest_ind(RND_C100, DSM_C100, equal_var=False).pvalue
    assert lines[j + 4] == f"| random | {p10:.3f} | {p100:.3f} |"
    assert lines[j + 5] == "| single | – | – |"
    assert "## Failed runs (1)" in lines
    assert "- random seed 3: RuntimeError: worker died (3 attempts)" in lines


def test_best_so_far_on_a_common_grid():
    h = pd.DataFrame({"val_acc": [80.0, 85.0, 83.0, 90.0],
                      "sim_time_s": [100.0, 200.0, 300.0, 400.0]})
    got = report.best_so_far_on_grid(h, np.array([0.0, 99.0, 100.0, 250.0, 350.0, 400.0, 900.0]))
    np.testing.assert_array_equal(got, [np.nan, np.nan, 80.0, 85.0, 85.0, 90.0, 90.0])
    grid, curves = report.anytime_curves(
        {("a", 0): h, ("a", 1): h.assign(val_acc=h.val_acc - 10), ("b", 0): h.iloc[:2]}, points=5
    )
    np.testing.assert_array_equal(grid, [0.0, 100.0, 200.0, 300.0, 400.0])
    assert curves["a"].shape == (2, 5) and curves["b"].shape == (1, 5)
    np.testing.assert_array_equal(curves["b"][0], [np.nan, 80.0, 85.0, 85.0, 85.0])


def test_budgets_of_queries_are_plotted_against_queries():
    # no query costs simulated time (a budget of queries): the axis is the queries made
    h = pd.DataFrame({"val_acc": [80.0, 85.0, 83.0, 90.0], "sim_time_s": [0.0] * 4})
    assert report.anytime_axis({("a", 0): h}) == "queries"
    grid, curves = report.anytime_curves({("a", 0): h, ("b", 0): h.iloc[:2]}, points=5)
    np.testing.assert_array_equal(grid, [0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(curves["a"][0], [np.nan, 80.0, 85.0, 85.0, 90.0])
    np.testing.assert_array_equal(curves["b"][0], [np.nan, 80.0, 85.0, 85.0, 85.0])


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_write_report_writes_summaries_and_png_plots(tmp_path):
    runs = runs_table()
    rng = np.random.default_rng(0)
    histories = {}
    for r in report.finished(runs).itertuples():
        n = 20
        histories[(r.method, r.seed)] = pd.DataFrame({
            "step": np.arange(n), "val_acc": rng.uniform(70, 90, n),
            "sim_time_s": np.cumsum(rng.uniform(50, 150, n)),
        })
    paths = report.write_report(runs, histories, tmp_path, title="t")
    assert {p.name for p in paths} == {"summary.csv", "summary.md", report.ANYTIME_PNG,
                                       report.TEST_PNG}
    assert _is_png(tmp_path / report.ANYTIME_PNG) and _is_png(tmp_path / report.TEST_PNG)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["method"].tolist() == ["dsm", "random", "single"]
    assert summary.loc[1, "n_failed"] == 1


def test_data_without_test_accuracy_plots_validation_accuracy(tmp_path):
    runs = runs_table().drop(columns=["test_acc_cifar10", "test_acc_cifar100"])
    md = report.summary_markdown(report.summarize(runs), runs)
    assert "This data has no test accuracy." in md and "Welch" not in md
    assert _is_png(report.plot_test_distribution(runs, tmp_path / "val.png"))
