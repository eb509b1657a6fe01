"""How things are trained and run: REINFORCE, the search runner, baselines, Tune trainables."""

from dsmnas import _guard

_guard(__name__)
