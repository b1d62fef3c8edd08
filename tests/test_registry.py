"""One registry shape for styles, renderers, analysers, recognizers and datasets."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from maskface.errors import InvalidInputError, MaskfaceError, UnknownNameError
from maskface.registry import Registry, normalize_name


def _registry() -> Registry:
    reg: Registry = Registry("widget")

    @reg.register("big-box", aliases=("crate",))
    def big_box(size: int = 1) -> tuple[str, int]:
        return "big", size

    reg.register("small_box", lambda: "small")
    reg.register("tube", lambda: "tube")
    return reg


def test_register_create_list_and_normalise():
    reg = _registry()
    assert reg.list() == ["big-box", "small_box", "tube"]
    assert reg.list("*box") == ["big-box", "small_box"]
    assert reg.list("SMALL-*") == ["small_box"]  # patterns ignore case and -/_ too
    assert reg.list("nothing*") == []
    assert reg.create("Big_Box", size=3) == ("big", 3)
    assert reg.create("crate") == ("big", 1)  # an alias
    assert reg.resolve(" small-BOX ") == "small_box"
    assert "TUBE" in reg and "crate" in reg and "box" not in reg and 3 not in reg
    assert len(reg) == 3 and list(reg) == reg.list() and dict(reg)["tube"]() == "tube"
    assert reg.aliases() == {"crate": "big-box"}
    assert normalize_name(" Half_Mask ") == "half-mask"


def test_one_unknown_name_error_lists_the_choices():
    reg = _registry()
    with pytest.raises(UnknownNameError) as caught:
        reg.create("boxx")
    error = caught.value
    assert str(error) == "unknown widget 'boxx'; choose from big-box, small_box, tube"
    assert isinstance(error, ValueError) and isinstance(error, KeyError)
    assert isinstance(error, MaskfaceError)
    assert error.choices == ("big-box", "small_box", "tube") and error.name == "boxx"
    assert reg.get("boxx") is None  # Mapping.get still works: the error is a KeyError
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)


def test_taken_names_are_refused_but_re_registering_is_harmless():
    reg = _registry()
    entry = reg["tube"]
    assert reg.register("tube", entry) is entry
    with pytest.raises(InvalidInputError, match="already registered as 'tube'"):
        reg.register("Tube", lambda: "other")
    with pytest.raises(InvalidInputError, match="already"):
        reg.alias("crate", "tube")
    with pytest.raises(InvalidInputError, match="alias"):
        reg.register("crate", lambda: "crate")


def test_every_registry_of_the_package_has_the_same_shape(tmp_path: Path):
    from maskface.datasets import DATASETS, UnknownDatasetError, list_datasets, load_dataset
    from maskface.datasets.base import DatasetError
    from maskface.geometry.analysers import ANALYSERS, list_analysers
    from maskface.recognizers import RECOGNIZERS, create_recognizer, list_recognizers
    from maskface.render.registry import RENDERERS, create_renderer, list_renderers
    from maskface.styles import create_style, list_styles
    from maskface.styles.registry import STYLES

    for reg in (STYLES, RENDERERS, ANALYSERS, RECOGNIZERS, DATASETS):
        assert isinstance(reg, Registry)
    assert list_styles("*95") == ["kn95", "n95"]
    assert list_renderers("3*") == ["3d"]
    assert list_analysers("*pipe") == ["mediapipe"]
    assert list_recognizers("dlib*") == ["dlib", "dlib-resnet", "dlib-resnet-masked"]
    assert list_datasets("*face*") == ["utkface", "casia-webface", "vggface2"]
    assert list_datasets()[0] == "lfw"  # datasets keep their order: the most used first

    # Any case, '-' or '_', and the style aliases the API has always accepted.
    assert create_style("Half-Mask").name == "respirator"
    assert create_style("KN95").name == "kn95"
    assert create_renderer("3D").name == "3d"
    (tmp_path / "alice").mkdir()
    assert type(load_dataset("CASIA_WebFace", tmp_path)).name == "casia-webface"

    for make, name in ((create_style, "bandana"), (create_renderer, "4d"),
                       (create_recognizer, "no-such-net")):
        with pytest.raises(UnknownNameError, match=f"unknown .*'{name}'; choose from"):
            make(name)
    with pytest.raises(UnknownDatasetError) as caught:
        load_dataset("imagenet", tmp_path)
    # A dataset error too, worded as the other dataset errors are.
    assert isinstance(caught.value, DatasetError) and isinstance(caught.value, UnknownNameError)
    assert str(caught.value).startswith("Unknown dataset 'imagenet'; choose from lfw, mfr2")
