import json

from producers.hyperdrive.stored import RUN_KIND, TRIAL_PROPERTIES, sweep_view

SWEEP = {"primary_metric_name": "mse", "primary_metric_goal": "MINIMIZE", "sampling": "grid",
         "policy": json.dumps({"type": "bandit", "slack_factor": 0.1})}


def test_the_objective_and_one_column_per_sampled_parameter() -> None:
    view = sweep_view(RUN_KIND, SWEEP, [json.dumps({"--alpha": 0.1, "--opt": "adam"}),
                                        json.dumps({"--alpha": 1, "--opt": "sgd", "--extra": True}),
                                        None, "not json", "[1, 2]"])
    assert view is not None
    assert (view.primary_metric_name, view.goal, view.sampling) == ("mse", "min", "grid")
    assert view.policy == "bandit(slack_factor=0.1)"
    assert view.params == {"--alpha": ["0.1", "1", None, None, None], "--opt": ["adam", "sgd", None, None, None],
                           "--extra": [None, "true", None, None, None]}
    assert view.trial_properties == list(TRIAL_PROPERTIES)


def test_maximize_and_runs_that_are_not_sweeps() -> None:
    view = sweep_view(RUN_KIND, {**SWEEP, "primary_metric_goal": "MAXIMIZE"}, [])
    assert view is not None and view.goal == "max" and view.params == {}
    assert sweep_view(RUN_KIND, {**SWEEP, "policy": "odd"}, []).policy == "odd"
    assert sweep_view(RUN_KIND, {**SWEEP, "policy": '{"type": "none"}'}, []).policy == "none"
    assert sweep_view("submitted", SWEEP, []) is None
    assert sweep_view(RUN_KIND, {}, []) is None
