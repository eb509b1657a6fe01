"""cluster.yaml is checked offline against Ray's own autoscaler schema (no credentials), and
cluster-local.yaml (the same node types on Ray's fake multi-node provider, which
tests/test_autoscale.py runs) is checked to agree with it."""

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"
LOCAL_YAML = CLUSTER_YAML.with_name("cluster-local.yaml")
BUILT_IN = {"CPU", "GPU", "memory", "object_store_memory"}
"""Ray's own resources: autodetected on AWS, declared (and scaled down) in the local file."""


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


@pytest.fixture()
def local():
    return yaml.safe_load(LOCAL_YAML.read_text())


def test_cluster_local_yaml_passes_rays_schema(local):
    # prepare_config() would merge the fake provider's example.yaml, which Ray 2.60's wheel
    # lacks: the local file is complete and is validated as it is
    validate_config(copy.deepcopy(local))
    assert local["provider"]["type"] == "fake_multinode"


def test_the_local_cluster_has_the_node_types_and_resources_of_the_cloud_one(cluster, local):
    cloud, here = cluster["available_node_types"], local["available_node_types"]
    # the head's name is fixed by the fake provider (ray.head.default)
    assert set(cloud) - {cluster["head_node_type"]} == set(here) - {local["head_node_type"]}
    assert here[local["head_node_type"]]["resources"] == cloud[cluster["head_node_type"]][
        "resources"] == {"CPU": 0}
    for name in set(cloud) - {cluster["head_node_type"]}:
        custom = {k for k in cloud[name]["resources"] if k not in BUILT_IN}
        assert custom == {k for k in here[name]["resources"] if k not in BUILT_IN}, name
        # AWS autodetects CPUs and GPUs; locally they must be declared, or nothing scales
        assert here[name]["resources"].get("CPU", 0) >= 1, name
        assert here[name]["max_workers"] >= 1 and here[name]["min_workers"] == 0, name
    assert here["gpu_worker"]["resources"]["GPU"] >= 1
    assert "GPU" not in here["cpu_worker"]["resources"]
    # the local nodes are processes on this machine: no SSH updaters, told apart by node id
    assert local["provider"]["disable_node_updaters"] and local["provider"]["use_node_id_as_ip"]
