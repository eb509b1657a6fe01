"""How things are trained and run: REINFORCE, the search runner, baselines, Tune trainables."""
