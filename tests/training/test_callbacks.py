import itertools
import json

import keras
import numpy as np
import pytest

from tfllm.training.callbacks import BestWeights, LossHistory, ScalarLogs, StepCheckpoint, read_checkpoint_state
from tfllm.training.callbacks import best_weights
from tfllm.training.pretrain import fit_plan


def _compiled_dense():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_checkpoint_round_trip_and_refusal_of_nan_weights(tmp_path):
    model = _compiled_dense()
    model.optimizer.iterations.assign(7)
    checkpoint = StepCheckpoint(tmp_path, every=2, extra_state=lambda: {"note": "kept"})
    checkpoint.set_model(model)
    assert checkpoint.save(step=2, loss=1.0)
    good = [keras.ops.convert_to_numpy(weight) for weight in model.weights]
    kernel = model.trainable_weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.warns(RuntimeWarning, match="the checkpoint of step 2 is kept"):
        assert not checkpoint.save(step=4, loss=1.0)
    with pytest.warns(RuntimeWarning):
        assert not checkpoint.save(step=4, loss=float("inf"))
    assert read_checkpoint_state(tmp_path) == {"step": 2, "weights": "step-000000002.weights.h5", "seed_generators": [],
                                               "note": "kept"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "step-000000002.weights.h5"]

    fresh = _compiled_dense()
    restorer = StepCheckpoint(tmp_path, every=2)
    assert restorer.saved_step == 2
    assert restorer.restore(fresh)["step"] == 2 and restorer.step == 2
    for want, got in zip(good, fresh.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), want)
    assert int(fresh.optimizer.iterations) == 7  # the optimizer's state comes back with the weights


def test_a_checkpoint_restores_the_dropout_seed_generators_state(tmp_path):
    # `save_weights` leaves the seed generators out: a resumed run drew the dropout masks of its first steps again.
    def dropout_model():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dropout(0.5), keras.layers.Dense(2)])
        model.compile(keras.optimizers.Adam(), "mse")
        model.optimizer.build(model.trainable_variables)
        return model

    def masks(model):  # the dropout masks of two training calls
        return [keras.ops.convert_to_numpy(model.layers[0](np.ones((4, 8), "float32"), training=True)) != 0
                for _ in range(2)]

    model = dropout_model()
    masks(model)  # the state moves on with every draw
    checkpoint = StepCheckpoint(tmp_path, every=1)
    checkpoint.set_model(model)
    checkpoint.save(step=1)
    expected = masks(model)
    fresh = dropout_model()
    StepCheckpoint(tmp_path, every=1).restore(fresh)
    np.testing.assert_array_equal(masks(fresh), expected)


def test_the_best_weights_are_committed_by_best_json(tmp_path, monkeypatch):
    # The weights file was written in place before best.json: a kill between the two writes left the new weights
    # labelled with the old step and loss.
    model = _compiled_dense()
    best = BestWeights(tmp_path)
    best.set_model(model)
    best.on_train_batch_end(0, {})
    best.on_epoch_end(0, {"val_loss": 2.0})
    kept = [keras.ops.convert_to_numpy(weight) for weight in model.weights]
    model.trainable_weights[0].assign(np.ones(model.trainable_weights[0].shape, "float32"))

    def killed(path, text):
        raise SystemExit("killed before best.json was written")

    monkeypatch.setattr(best_weights, "atomic_write_text", killed)
    best.on_epoch_begin(1)
    best.on_train_batch_end(0, {})
    with pytest.raises(SystemExit):
        best.on_epoch_end(1, {"val_loss": 1.0})
    fresh = _compiled_dense()
    assert BestWeights(tmp_path).restore(fresh) == {"step": 1, "val_loss": 2.0,
                                                    "weights": "best-step-000000001.weights.h5"}
    for want, got in zip(kept, fresh.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), want)


def test_a_damaged_checkpoint_is_named(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"step": 3, "weights": "step-000000003.weights.h5"}))
    (tmp_path / "step-000000003.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"step-000000003\.weights\.h5 \(step 3\) cannot be loaded"):
        StepCheckpoint(tmp_path, every=1).restore(_compiled_dense())
    (tmp_path / "state.json").write_text("{")
    with pytest.raises(ValueError, match=r"state\.json is damaged"):
        read_checkpoint_state(tmp_path)


def test_loss_history_recovers_each_step_from_keras_running_means():
    history = LossHistory(initial_step=10, records={"steps": [9, 10, 11], "losses": [5.0, 4.0, 9.0],
                                                    "epochs": [{"step": 10, "loss": 4.5}, {"step": 11}]})
    assert history.to_dict() == {"steps": [9, 10], "losses": [5.0, 4.0], "epochs": [{"step": 10, "loss": 4.5}]}
    history.on_epoch_begin(5)
    for batch, running_mean in enumerate([4.0, 3.5, 3.0]):  # step losses 4, 3, 2
        history.on_train_batch_end(batch, {"loss": running_mean})
    history.on_epoch_end(5, {"loss": 3.0, "val_loss": 3.25})
    assert history.steps == [9, 10, 11, 12, 13]
    np.testing.assert_allclose(history.losses, [5.0, 4.0, 4.0, 3.0, 2.0])
    assert history.epochs[-1] == {"step": 13, "loss": 3.0, "val_loss": 3.25}


def test_fit_plan_trains_every_step_once_in_globally_numbered_epochs():
    for steps, every in itertools.product(range(1, 10), range(1, 11)):
        for start in range(steps + 1):
            trained = []
            for initial_epoch, epochs, steps_per_epoch in fit_plan(start, steps, every):
                for epoch in range(initial_epoch, epochs):
                    first = trained[-1] + 1 if trained else start + 1
                    assert (first - 1) // every == epoch  # the epoch's steps are where epoch `epoch` is
                    epoch_steps = list(range(first, first + steps_per_epoch))
                    assert epoch_steps[-1] == min((epoch + 1) * every, steps)  # it ends at a validation
                    trained.extend(epoch_steps)
            assert trained == list(range(start + 1, steps + 1)), (start, steps, every)


def test_scalar_logs_average_the_steps_since_the_last_point_across_a_resume_and_skipped_steps(tmp_path):
    model = _compiled_dense()
    # Resumed at step 5: the restored history holds steps 1-5, whose losses the first window (4, 8] starts with.
    history = LossHistory(initial_step=5, records={"steps": [1, 2, 3, 4, 5], "losses": [9.0, 9.0, 9.0, 9.0, 8.0]})
    logs = ScalarLogs(tmp_path, every=4, history=history, initial_step=5)
    for callback in (history, logs):
        callback.set_model(model)
        callback.on_epoch_begin(1)
    for batch, mean in enumerate([6.0, 5.0, 4.0, 3.5, 3.0, 2.5, 2.0]):  # steps 6-12, losses 6, 4, 2, 2, 1, 0, -1
        for callback in (history, logs):
            callback.on_train_batch_end(batch, {"loss": mean, "tokens_per_second": float("nan")})
    assert logs.written == [(8, pytest.approx((8 + 6 + 4 + 2) / 4)), (12, pytest.approx((2 + 1 + 0 - 1) / 4))]

    skipping = ScalarLogs(tmp_path / "skipping", every=4)  # `steps_per_execution=3`: Keras reports every 3rd step
    skipping.set_model(model)
    skipping.on_epoch_begin(0)
    for batch in (2, 5, 8, 11):
        skipping.on_train_batch_end(batch, {"loss": float(batch)})
    assert skipping.written == [(6, 5.0), (9, 8.0), (12, 11.0)]  # a point each time a multiple of 4 is passed
