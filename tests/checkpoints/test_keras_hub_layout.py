"""How a KerasHub `model.weights.h5` names its blocks: `transformer_decoder`, then `_1`, `_2`, ... `_11` by number."""

import h5py

from tfllm.checkpoints.keras_hub_gpt2 import _block_groups


def test_blocks_are_ordered_by_their_number_not_by_their_name(tmp_path):
    path = tmp_path / "model.weights.h5"
    names = ["transformer_decoder", *(f"transformer_decoder_{index}" for index in range(1, 12))]
    with h5py.File(path, "w") as file:
        for name in sorted(names) + ["layer_normalization", "reversible_embedding"]:  # h5py lists groups by name
            file.create_group(f"layers/{name}")
    with h5py.File(path, "r") as file:
        assert _block_groups(file, str(path)) == [f"layers/{name}" for name in names]
