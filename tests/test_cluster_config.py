"""cluster.yaml is checked offline against Ray's own autoscaler schema (no credentials)."""

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


@pytest.fixture()
def cluster():
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_rays_schema(cluster):
    validate_config(prepare_config(copy.deepcopy(cluster)))


def test_cluster_yaml_places_work_where_intended(cluster):
    types = cluster["available_node_types"]
    assert types[cluster["head_node_type"]]["resources"] == {"CPU": 0}
    assert types["gpu_worker"]["resources"]["supernet_evaluator"] > 0
    assert "supernet_evaluator" not in types["cpu_worker"]["resources"]
    # the GPU workers' evaluator actors import ofa: every node installs the ofa extra
    assert any("pip install" in c and "dsmnas[ofa]" in c for c in cluster["setup_commands"])
    assert cluster["file_mounts"]["~/dsmnas"] == "."


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c.update(head_node_type="nope"),
        lambda c: c["available_node_types"]["cpu_worker"].update(min_workers=30),
        lambda c: c.update(unknown_key=1),
        lambda c: c.update(max_workers="many"),
        lambda c: c["provider"].update(type="nocloud"),
    ],
)
def test_the_validation_would_catch_mistakes(cluster, break_it):
    break_it(cluster)
    with pytest.raises((ValueError, NotImplementedError, jsonschema.ValidationError)):
        validate_config(prepare_config(cluster))
