"""HuggingFace image classifiers: classifier Linear and id2label, raw and folded."""

from __future__ import annotations

import numpy as np
import pytest

from unembed import UnembedError, load


@pytest.mark.parametrize("family,norm", [("vit", "layernorm"), ("convnext", "layernorm"),
                                         ("resnet", None)])
def test_classifier_head_equals_model_logits(tiny_vision_dir, family, norm):
    m = load(tiny_vision_dir(family))
    assert m.kind == "hf_vision" and m.head.labels[:2] == ("class_a", "class_b")
    assert m.head.meta["norm_kind"] == norm and m.head.rows == "stored"
    x = m.random_inputs(3, seed=1)
    z = m.model_logits(x)
    np.testing.assert_allclose(m.head.logits(m.hidden_states(x)), z, atol=1e-5)
    if norm is None:
        with pytest.raises(UnembedError, match="no final norm"):
            load(tiny_vision_dir(family), fold=True)
        return
    f = load(tiny_vision_dir(family), fold=True)
    np.testing.assert_array_equal(f.head.W, m.head.W * m.norm.gain)
    h = f.hidden_states(x)
    np.testing.assert_allclose(h.sum(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(f.head.logits(h), z, atol=1e-5)


@pytest.mark.parametrize("family", ["vit", "convnext", "resnet"])
def test_random_images_have_the_shape_the_config_gives(tiny_vision_dir, family):
    """(C, H, W) from config.json read here with json: image_size when it has one (ViT 16,
    ConvNeXt's default 224), any size (64) for ResNet, which has none; read once, typed."""
    import json

    path = tiny_vision_dir(family)
    cfg = json.loads((path / "config.json").read_text())
    m = load(path)
    side = cfg.get("image_size", 64)
    assert (family == "resnet") == ("image_size" not in cfg)
    assert m.images.channels == cfg["num_channels"] == 3
    assert m.random_inputs(2, seed=3).shape == (2, 3, side, side)
    assert m.images.size_from == ("image_size" if family != "resnet" else
                                  "none in the config (a model of any input size): 64 x 64")


def _edited(src, dst, **fields):
    import json
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(fields)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_a_pair_image_size_is_height_and_width(tiny_vision_dir, tmp_path):
    """image_size [16, 16] (as ViT accepts it): the model is read and checked on images of
    that size (before, a pair fell back to 64 x 64, which this ViT refuses)."""
    m = load(_edited(tiny_vision_dir("vit"), tmp_path / "vit", image_size=[16, 16]))
    assert (m.images.height, m.images.width) == (16, 16)
    x = m.random_inputs(2, seed=1)
    assert x.shape == (2, 3, 16, 16)
    np.testing.assert_allclose(m.head.logits(m.hidden_states(x)), m.model_logits(x), atol=1e-5)


@pytest.mark.parametrize(("fields", "message"), [
    ({"num_channels": None}, "the field 'num_channels' must be a positive integer. Got None"),
    ({"num_channels": True}, "the field 'num_channels' must be a positive integer. Got True"),
    ({"image_size": "big"}, "the field 'image_size' must be a positive integer or a pair "
                            "[height, width] of them. Got 'big'"),
    ({"image_size": [16, 0]}, "the field 'image_size' must be a positive integer or a pair "
                              "[height, width] of them. Got [16, 0]"),
])
def test_a_config_without_a_usable_image_shape_is_refused(tiny_vision_dir, tmp_path, capsys,
                                                          fields, message):
    """One line naming config.json and the field, exit 2, before the model loads."""
    from unembed.cli import main

    bad = _edited(tiny_vision_dir("vit"), tmp_path / "vit", **fields)
    with pytest.raises(UnembedError) as e:
        load(bad)
    assert str(e.value).startswith(f"{bad / 'config.json'}: ") and message in str(e.value)
    assert main(["inspect", str(bad)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.count("\n") == 1 and message in cap.err


def test_image_shape_of_real_configs_without_the_fields_at_the_top(tmp_path):
    """transformers' own configs: CLIP keeps the fields in its vision_config (read there);
    Perceiver has no num_channels at all (refused naming it, not guessed as 3); a
    vision_config whose size is not usable is refused naming the field."""
    import transformers as tf

    from unembed.sources.hf_vision import ImageInputs

    clip = tf.CLIPConfig().to_dict()
    vc = clip["vision_config"]
    got = ImageInputs.from_config(clip, tmp_path)
    assert (got.channels, got.height, got.width) == (vc["num_channels"], vc["image_size"],
                                                     vc["image_size"])
    assert got.size_from == "vision_config.image_size"
    with pytest.raises(UnembedError, match="config.json: the image classifier's config has no "
                                           "num_channels"):
        ImageInputs.from_config(tf.PerceiverConfig().to_dict(), tmp_path)
    clip["vision_config"]["image_size"] = [224]
    with pytest.raises(UnembedError, match=r"vision_config.image_size is \[224\], neither a "
                                           r"positive integer nor a pair"):
        ImageInputs.from_config(clip, tmp_path)
    clip["vision_config"]["num_channels"] = 0
    with pytest.raises(UnembedError, match="vision_config.num_channels is 0, not a positive"):
        ImageInputs.from_config(clip, tmp_path)
