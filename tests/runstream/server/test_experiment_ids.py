from runstream.server.experiment_ids import ExperimentIds, experiment_id
from runstream.server.mlflow_rules import check_run_id


def test_ids_are_stable_numeric_strings():
    assert experiment_id("Default") == "0"
    a = experiment_id("mnist-sweep")
    assert a == experiment_id("mnist-sweep") and a.isdigit() and int(a) < 2**60
    assert experiment_id("my exp/v2") != a
    check_run_id(a)  # within MLflow's id pattern


def test_reverse_lookup_and_clash():
    ids = ExperimentIds()
    assert ids.name_of("0") == "Default"
    ids.learn(["mnist", "cifar"])
    assert ids.name_of(experiment_id("cifar")) == "cifar"
    assert ids.name_of("123") is None
    assert ids.clash("mnist") is None
