"""trainers/plots.py: rewards.png draws a smoothed curve and the evaluations with their intervals."""

from __future__ import annotations

import pytest

from trainers.config import derive_seed
from trainers.plots import eval_points, plot_rewards, smooth


@pytest.mark.parametrize("values, window, expected", [
    ([0, 2, 4, 6], 2, [0, 1, 3, 5]),
    ([1, 1, 1], 5, [1, 1, 1]),              # a window longer than the run
    ([3], 1, [3]),
    ([], 3, []),
])
def test_smooth_is_a_trailing_moving_average(values, window, expected):
    assert smooth(values, window) == pytest.approx(expected)


def _report(value, low, high):
    return {"metrics": {"pass@k": {"1": {"value": value, "ci": [low, high]}}}}


def test_eval_points_place_before_during_and_after():
    evaluations = {"before": _report(0.35, 0.3, 0.4), "step500": _report(0.6, 0.55, 0.65),
                   "after": _report(0.74, 0.7, 0.78), "broken": None}
    assert eval_points(evaluations, 1000) == [("before", 0, 0.35, 0.3, 0.4), ("step500", 500, 0.6, 0.55, 0.65),
                                              ("after", 1000, 0.74, 0.7, 0.78)]


def test_rewards_png_has_labelled_axes_a_smoothed_line_and_the_evaluations(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig) or close(fig))
    history = [{"step": i, "reward_mean": (i % 7) / 7, "pass_rate": (i % 7) / 7} for i in range(1, 101)]
    path = plot_rewards(history, {"before": _report(0.3, 0.2, 0.4), "after": _report(0.5, 0.4, 0.6)},
                        tmp_path / "rewards.png", "grpo on arithmetic, model tiny")
    assert path.read_bytes()[:4] == b"\x89PNG"
    ax = figures[-1].axes[0]
    assert ax.get_xlabel() == "optimizer step" and ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("batch mean reward (5-step average)")
    assert not any("pass rate" in label for label in labels)     # equal to the reward here: not drawn twice
    assert any("pass@1" in label for label in labels)
    assert plot_rewards([], {}, tmp_path / "none.png", "t") is None


def test_derive_seed_keeps_the_seeds_of_earlier_runs():
    """The streams' seeds are those the trainers used before derive_seed existed, so runs repeat."""
    assert derive_seed(0, "sampling", 256) == 256
    assert derive_seed(3, "sampling", 10) == 3 * 1_000_003 + 10
    assert derive_seed(2, "task_order", 1) == 2 * 100_003 + 1
    assert derive_seed(5, "minibatch_order", 7) == 5 * 7919 + 7
    assert derive_seed(10**6, "sampling", 0) < 2**31
    with pytest.raises(KeyError):
        derive_seed(0, "unknown", 0)


def test_without_matplotlib_the_figure_is_skipped_with_a_line(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    history = [{"step": 1, "reward_mean": 0.5, "pass_rate": 0.5}]
    assert plot_rewards(history, {}, tmp_path / "rewards.png", "t") is None
    assert not (tmp_path / "rewards.png").exists()
    assert "matplotlib is not installed: no rewards.png" in capsys.readouterr().err
