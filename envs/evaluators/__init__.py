"""The MobileNet-like space's evaluators: pure torch + `ofa`, and the data they read.

- `supernet`: OFA MobileNetV3 supernets, their checkpoint files (`save_checkpoint`,
  `read_checkpoint`) and `SubnetEvaluator` (BatchNorm recalibration, top-1 on fixed images).
- `images`: the image data supernets are trained and scored on (Fashion-MNIST idx files or an
  image folder; train / val / test splits).
- `fitted`: the fitted predictor's model, features and file (`save_fitted`, `load_fitted`).
- `client`: `EvaluatorClient`, which connects to the evaluator actors by name (never starts
  Ray or actors), and `subnet_key`, the space's key of an `ofa` subnet dict.

`envs.benchmarks.mobilenet` turns them into benchmarks. Nothing here starts Ray or trains:
the evaluator actors are `trainables.evaluator_service`, supernet training
`trainables.supernet`, predictor fitting `trainables.fit_predictor`. Submodules are imported
by name (`from envs.evaluators.supernet import SubnetEvaluator`), so importing the package
imports neither torch nor Ray.
"""

FASHION_MNIST = "fashion-mnist"
"""The built-in image data's name (`images` reads it; named here, so that a setting's
default can name it without importing torch)."""
