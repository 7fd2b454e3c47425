import pytest

from tfllm.training.convert_config import ConvertConfig


def test_a_config_of_the_wrong_types_names_the_field_and_what_was_expected():
    good = ConvertConfig.for_checkpoint("/models/gpt2", "hugging_face", {"model_type": "gpt2"}, context=1024).to_dict()
    with pytest.raises(ValueError, match=r"^source=3 is invalid: expected the checkpoint's path, a string$"):
        ConvertConfig.from_dict({**good, "source": 3})
    with pytest.raises(ValueError, match=r"^checkpoint_config is a list: expected the checkpoint's config, a JSON "
                                         r"object$"):
        ConvertConfig.from_dict({**good, "checkpoint_config": ["gpt2"]})
    assert ConvertConfig.from_dict(good).sequence_length == 256
