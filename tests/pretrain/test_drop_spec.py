"""DropSpec: validation, metadata round trip, and the same answers as the code it replaced for every paper variant."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from dropbench.benchmarks.results import variant_name
from dropbench.pretrain.schedules import DropSpec, drop_schedule
from dropbench.pretrain.train import build_config, get_args_parser, pretrain_metadata, variants

EPOCHS, ITERS = 100, 3  # long enough for every variant's cutoff (epoch 50)


# What train.py, results.py and report.py computed before DropSpec (at commit c6f093f), as the oracle.
def _old_metadata(d: dict) -> dict:
    return {"drop_kind": d["kind"], "drop_rate": float(d["rate"]) if d["kind"] != "none" else 0.0,
            "drop_mode": d["mode"], "drop_schedule": d["schedule"], "cutoff_epoch": int(d["cutoff_epoch"])}


def _old_model_kwargs(d: dict) -> dict:
    peak = float(d["rate"]) if d["kind"] != "none" else 0.0
    return {"dropout": peak if d["kind"] == "dropout" else 0.0, "drop_path": peak if d["kind"] == "drop_path" else 0.0}


def _old_variant_name(pretrain: dict) -> str:
    kind = pretrain.get("drop_kind", "none")
    if kind in (None, "none") or not pretrain.get("drop_rate"):
        return "baseline"
    return f"{pretrain.get('drop_mode', 'standard')}-{'dropout' if kind == 'dropout' else 'sd'}"


def _old_rates(d: dict) -> np.ndarray | None:
    if d["kind"] != "none" and d["mode"] != "standard":
        return drop_schedule(float(d["rate"]), EPOCHS, ITERS, int(d["cutoff_epoch"]), d["mode"], d["schedule"])
    return None


@pytest.mark.parametrize("name, settings", list(variants().items()))
def test_every_paper_variant_answers_as_before(name, settings):
    spec = DropSpec.from_config(settings)
    assert spec.metadata() == _old_metadata(settings)
    assert list(spec.metadata()) == list(_old_metadata(settings))  # the same keys in the same order
    assert spec.model_kwargs() == _old_model_kwargs(settings)
    assert spec.variant == _old_variant_name(spec.metadata()) == variant_name(spec.metadata()) == name
    assert spec.fixed_rates() == ({settings["kind"]: settings["rate"]} if settings["kind"] != "none" and
                                  settings["mode"] == "standard" else {})
    old = _old_rates(settings)
    assert spec.scheduled == (old is not None)
    if old is not None:
        np.testing.assert_array_equal(spec.rates(EPOCHS, ITERS), old)
    else:
        np.testing.assert_array_equal(spec.rates(EPOCHS, ITERS), spec.rate)
    assert DropSpec.from_metadata(spec.metadata()) == spec


@pytest.mark.parametrize("name", list(variants()))
def test_variant_flag_and_suite_settings_give_the_variant_metadata(synth_imagenet, tmp_path, name):
    argv = ["--config", "basic", "--model", "vit_tiny", "--data", str(synth_imagenet), "--out", str(tmp_path)]
    meta = pretrain_metadata(build_config(get_args_parser().parse_args([*argv, "--variant", name])))
    assert {k: v for k, v in meta.items() if k.startswith("drop_") or k == "cutoff_epoch"} == _old_metadata(
        variants()[name])
    assert DropSpec.from_metadata(meta).variant == name
    # the suite passes a variant's settings (they win over --cfg-options drop.* keys)
    args = get_args_parser().parse_args([*argv, "--cfg-options", "drop.kind=dropout", "drop.rate=0.3"])
    assert pretrain_metadata(build_config(args, drop_settings=variants()[name])) == meta


@pytest.mark.parametrize("spec", [
    DropSpec(),
    DropSpec("dropout", 0.2, "early", "linear", 3),
    DropSpec("drop_path", 0.4, "late", "constant", 7),
    DropSpec("drop_path", 0.1),
])
def test_round_trip_through_metadata(spec):
    assert DropSpec.from_metadata(spec.metadata()) == spec
    assert DropSpec.from_config(dataclasses.asdict(spec)) == spec


def test_values_are_normalised_and_frozen():
    spec = DropSpec("dropout", 0, "early", "constant", 2.0)
    assert (spec.rate, spec.cutoff_epoch) == (0.0, 2) and type(spec.rate) is float and type(spec.cutoff_epoch) is int
    assert spec.variant == "baseline"  # a zero rate drops nothing
    assert DropSpec("none", 0.3).rate == 0.0  # no drop: the rate is not used (as the metadata always recorded)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.rate = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="dropblock"), "drop.kind must be one of"),
    (dict(kind="dropout", rate=1.0), "drop_rate must be in"),
    (dict(kind="dropout", rate="0.1"), "drop_rate must be in"),
    (dict(kind="drop_path", rate=0.1, mode="late", schedule="linear", cutoff_epoch=1), "defined for mode 'early' only"),
    (dict(kind="drop_path", rate=0.1, mode="early", cutoff_epoch=1.5), "cutoff_epoch must be a whole number"),
    (dict(kind="drop_path", rate=0.1, mode="early", cutoff_epoch=-1), "cutoff_epoch must be in"),
    (dict(kind="dropout", rate=0.1, mode="middle"), "mode must be one of"),
    (dict(kind="dropout", rate=0.1, schedule="cosine"), "schedule must be one of"),
    (dict(mode="early"), "needs a rate"),
])
def test_bad_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DropSpec(**kwargs)


def test_cutoff_beyond_the_run_and_unknown_keys_are_refused():
    spec = DropSpec("dropout", 0.1, "early", "linear", 9)
    spec.check(9)
    with pytest.raises(ValueError, match=r"cutoff_epoch must be in \[0, epochs=3\], got 9"):
        spec.check(3)
    DropSpec(cutoff_epoch=9).check(3)  # no drop: no cutoff to check
    with pytest.raises(ValueError, match="unknown keys.*'rates'"):
        DropSpec.from_config({"kind": "dropout", "rates": 0.1})
