"""Classification fine-tuning: recipe, layer decay, launchers, a short fine-tune per format that beats chance, the CLI
writing result.json, resume, and refusals (broken data root, misfit checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from dropbench.benchmarks.cli import main
from dropbench.benchmarks.results import read_result
from dropbench.finetune.cls import build_cls_config, run_cls
from dropbench.finetune.convert import CheckpointError, file_sha256
from dropbench.finetune.datasets.cls import CLS_DATASETS, DataLayoutError, write_synth_cls
from dropbench.finetune.samples import load_states
from dropbench.finetune.tasks import Job, Outcome
from dropbench.pretrain import create_paper_model
from dropbench.pretrain.distributed import setup_launcher
from timm.optim import create_optimizer_v2

K = 4  # classes of the generated sets: chance is 25 %
# CPU-sized: 32 px, 4 epochs of 8 steps, evaluated once at the end
TINY = {"data.input_size": 32, "data.batch_size": 8, "optim.lr_batch_size": 8, "schedule.epochs": 4,
        "runtime.eval_every": 100, "runtime.progress": False}
PRETRAIN = {"model": "vit_tiny", "drop_kind": "drop_path", "drop_rate": 0.1, "drop_mode": "early",
            "drop_schedule": "linear", "cutoff_epoch": 50, "epochs": 300, "config_hash": "0123456789abcdef"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(paper_checkpoint) -> Path:
    """A vit_tiny checkpoint in dropbench's pretraining layout (1000-class head, pretraining metadata)."""
    return paper_checkpoint("vit_tiny", num_classes=1000, epoch=299,
                            **{k: v for k, v in PRETRAIN.items() if k != "model"})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("clsdata")
    return {d: write_synth_cls(base / d, seed=0, dataset=d, num_classes=K) for d in CLS_DATASETS}


def _job(dataset: str, checkpoint: Path, data: Path, out: Path, model: str = "vit_tiny", **kw) -> Job:
    return Job(model=model, checkpoint=checkpoint, data=data, out=out, dataset=dataset, **kw)


def _cfg_job(dataset: str, model: str, data: str, checkpoint: str, **kw) -> Job:
    """The job build_cls_config resolves (argument order of the former signature)."""
    return Job(model=model, checkpoint=checkpoint, data=data, out="/tmp/unused", dataset=dataset, **kw)


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def textures(tmp_path_factory) -> dict[str, Path]:
    """Every format with 4 texture classes, 30 training and 30 test images each (top-1 on 120 images is not noise)."""
    base = tmp_path_factory.mktemp("clstextures")
    return {d: write_synth_cls(base / d, seed=0, dataset=d, num_classes=K, train_per_class=30, test_per_class=30)
            for d in CLS_DATASETS}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", CLS_DATASETS)
def test_short_finetune_beats_chance(textures, pretrained_vit_tiny, tmp_path, dataset):
    """Each format's reader feeds a fine-tune that learns: 10 short epochs at 48 px from a checkpoint pretrained on the
    generated textures (the downstream classes are textures too, which untrained weights do not learn this fast)."""
    checkpoint = pretrained_vit_tiny
    out = run_cls(_job(dataset, checkpoint, textures[dataset], tmp_path / "run", config="smoke",
                       cfg_options={**TINY, "data.input_size": 48, "schedule.epochs": 10}))
    assert isinstance(out, Outcome) and out.seed == 0 and out.checkpoint == str(checkpoint)
    assert out.log_path == str(tmp_path / "run" / "log.jsonl") and len(out.config_hash) == 16
    m = out.metrics
    # 120 test images: chance is 25 % +- 4 (one standard error); measured 50-61 %
    assert m["top1"] >= 40.0, f"{dataset}: top-1 {m['top1']:.1f} % is not clearly above chance (25 %)"
    assert m["top5"] == 100.0  # 4 classes
    assert len(out.extra["per_class_top1"]) == K and m["mean_per_class_top1"] > 25.0
    recorded = out.record_extra()["load_report"]  # as result.json stores it
    assert recorded["dropped_head"] == ["head.bias", "head.weight"]
    assert recorded["missing"] == []  # the pretraining head is dropped, the rest loads strictly
    assert (out.pretrain["model"], out.pretrain["epochs"], out.pretrain["source"]) == ("vit_tiny", 4, "dropbench")
    assert out.checkpoint_sha256 == file_sha256(checkpoint)
    assert out.config["data"]["dataset"] == dataset and "per_dataset" not in out.config
    records = _log(tmp_path / "run")
    assert len(records) == 10 and "val_top1" in records[-1] and "val_top1" not in records[0]  # last epoch reported
    assert all(r["drop_path"] == 0.1 and r["dropout"] == 0.0 for r in records)  # fixed rate, no schedule


@pytest.mark.slow
def test_cli_writes_result_json_and_resumes(checkpoint, tmp_path):
    data, run_dir = tmp_path / "pets", tmp_path / "run"
    assert main(["data", "synth-cls", "--dataset", "pets", "--out", str(data)]) == 0
    argv = ["finetune", "cls", "--dataset", "pets", "--checkpoint", str(checkpoint), "--model", "vit_tiny",
            "--data", str(data), "--out", str(run_dir), "--config", "smoke", "--seed", "3",
            "--cfg-options", "data.input_size=32", "schedule.epochs=1", "runtime.progress=false"]
    assert main(argv) == 0
    r = read_result(run_dir)  # validates the schema
    assert (r.task, r.dataset, r.model, r.status, r.seed) == ("cls", "pets", "vit_tiny", "ok", 3)
    assert set(r.metrics) == {"top1", "top5", "mean_per_class_top1"}
    assert r.variant == "early-sd" and r.pretrain["drop_mode"] == "early"
    assert r.checkpoint_sha256 == file_sha256(checkpoint) and r.checkpoint == str(checkpoint)
    assert r.config["data"]["input_size"] == 32 and r.config["model"]["checkpoint"] == str(checkpoint)
    assert len(r.extra["per_class_top1"]) == K and r.extra["splits"] == {"train": "trainval", "test": "test"}
    hp = r.extra["hparams"]
    assert r.extra["recipe"] == "smoke" and (hp["epochs"], hp["drop_path"], hp["input_size"], hp["seed"]) == (
        1, 0.1, 32, 3)
    assert hp["precision"] == {"amp": "fp32", "tf32": False} and hp["layer_decay"] == 0.75
    assert {"torch", "torchvision", "timm"} <= set(r.versions) and r.wall_time_s > 0
    assert r.log_path == str(run_dir / "log.jsonl")
    # the per-sample outputs (label + top-5 per test image) give back the recorded metrics
    state = load_states(run_dir / r.extra["samples"])["cls"]
    assert state.n_images == r.extra["test_images"] and state.topk.shape[1] == 4  # k = min(5, 4 classes)
    for k, v in state.summary().items():
        assert v == pytest.approx(r.metrics[k], abs=1e-6)
    assert r.data["pets"]["kind"] == "generated" and r.data["pets"]["fingerprint"]["files"] == 4 * (16 + 8) + 2
    # a finished run resumes to the same result; starting it again without --resume is refused
    assert main([*argv, "--resume", "auto"]) == 0
    assert read_result(run_dir).metrics == r.metrics
    assert read_result(run_dir).extra["samples"] == "samples.npz"  # still named: the file the first process wrote
    assert main(argv) == 2


def test_cli_refuses_a_broken_data_root(checkpoint, data, tmp_path, capsys):
    broken = tmp_path / "stl"
    write_synth_cls(broken, dataset="stl10", num_classes=2, train_per_class=2, test_per_class=1)
    (broken / "stl10_binary" / "train_y.bin").unlink()
    run_dir = tmp_path / "run"
    rc = main(["finetune", "cls", "--dataset", "stl10", "--checkpoint", str(checkpoint), "--model", "vit_tiny",
               "--data", str(broken), "--out", str(run_dir)])
    assert rc == 2
    assert "train_y.bin is missing; expected ROOT/stl10_binary/" in capsys.readouterr().err
    r = read_result(run_dir)
    assert r.status == "failed" and "DataLayoutError" in r.error
    with pytest.raises(DataLayoutError, match="no cifar-100-python/"):
        run_cls(_job("cifar100", checkpoint, data["pets"], tmp_path / "r2", cfg_options=TINY))


def test_checkpoint_of_another_model_fails_loudly(data, tmp_path):
    path = tmp_path / "swin.pth"
    torch.save(create_paper_model("swin_femto", num_classes=10).state_dict(), path)  # bare timm state dict
    with pytest.raises(CheckpointError, match="vit"):
        run_cls(_job("imagefolder", path, data["imagefolder"], tmp_path / "run", cfg_options=TINY))


def test_mixer_at_another_resolution_is_refused_with_a_hint(data, tmp_path):
    path = tmp_path / "mixer.pth"
    torch.save({"model": create_paper_model("mixer_s32", num_classes=10, img_size=64).state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"another shape.*Mixer's token mixing is tied to the input size"):
        run_cls(_job("imagefolder", path, data["imagefolder"], tmp_path / "run", model="mixer_s32", cfg_options=TINY))


@pytest.mark.parametrize("model", ["vit_tiny", "swin_femto", "convnext_femto", "mixer_s32"])
def test_layer_decay_puts_every_parameter_in_exactly_one_group(model):
    cfg = build_cls_config(_cfg_job("cifar100", model, "/data", "ckpt.pth", config="transfer"))
    net = create_paper_model(model, num_classes=100, drop_path=cfg.drop.rate)
    o = cfg.optim
    opt = create_optimizer_v2(net, opt=o.opt, lr=1e-3, weight_decay=o.weight_decay, layer_decay=o.layer_decay)
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len(list(net.parameters()))
    scale = {id(p): g["lr_scale"] for g in opt.param_groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    params = dict(net.named_parameters())
    head = [p for n, p in params.items() if n.startswith("head")]
    assert head and all(scale[id(p)] == 1.0 for p in head)
    assert min(scale.values()) < 0.1 and len(set(scale.values())) > 4  # decays layer by layer
    assert all(decay[id(p)] == 0.0 for p in params.values() if p.ndim <= 1)


def test_transfer_recipe_and_per_data_set_settings():
    cfg = build_cls_config(_cfg_job("flowers102", "swin_femto", "/data", "c.pth", config="transfer",
                           cfg_options={"optim.lr": 1e-4}))
    assert cfg.data.input_size == 224 and cfg.optim.opt == "adamw" and cfg.optim.layer_decay == 0.75
    assert (cfg.augment.mixup, cfg.augment.cutmix, cfg.augment.smoothing) == (0.8, 1.0, 0.1)
    assert cfg.augment.auto_augment.startswith("rand-") and cfg.schedule.warmup_epochs > 0
    assert (cfg.drop.kind, cfg.drop.mode, cfg.drop.rate) == ("drop_path", "standard", 0.1)
    assert (cfg.schedule.epochs, cfg.data.batch_size, cfg.optim.lr) == (300, 32, 1e-4)  # per data set, then overrides
    assert "per_dataset" not in cfg and cfg.data.dataset == "flowers102" and cfg.model.name == "swin_femto"
    assert build_cls_config(_cfg_job("cifar100", "vit_tiny", "/d", "c.pth", config="transfer")).schedule.epochs == 100
    smoke = build_cls_config(_cfg_job("food101", "vit_tiny", "/d", "c.pth", seed=7))
    assert smoke.data.input_size == 64 and smoke.runtime.seed == 7 and smoke.optim.layer_decay == 0.75
    with pytest.raises(ValueError, match="fixed drop rates"):
        build_cls_config(_cfg_job("pets", "vit_tiny", "/d", "c.pth", cfg_options={"drop.mode": "early"}))
    with pytest.raises(ValueError, match="unknown --dataset 'svhn'"):
        build_cls_config(_cfg_job("svhn", "vit_tiny", "/d", "c.pth"))
    with pytest.raises(ValueError, match="unknown model 'resnet_999': neither a paper model"):
        build_cls_config(_cfg_job("pets", "resnet_999", "/d", "c.pth"))  # issue 12: any timm architecture is known
    assert build_cls_config(_cfg_job("pets", "resnet50", "/d", "c.pth")).model.name == "resnet50"
    with pytest.raises(ValueError, match="no recipe 'paper'"):
        build_cls_config(_cfg_job("pets", "vit_tiny", "/d", "c.pth", config="paper"))


def test_launchers(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID"):
        monkeypatch.setenv(key, "")  # recorded, so that teardown restores what setup_launcher exports
        monkeypatch.delenv(key)
    setup_launcher("none")
    with pytest.raises(ValueError, match="torchrun"):
        setup_launcher("pytorch")
    with pytest.raises(ValueError, match="SLURM_PROCID"):
        setup_launcher("slurm")
    with pytest.raises(ValueError, match="unknown launcher"):
        setup_launcher("mpi")
    import os

    for key, value in {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "1234",
                       "SLURM_NODELIST": ""}.items():
        monkeypatch.setenv(key, value)
    setup_launcher("slurm")
    assert [os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")] == [
        "5", "8", "1", "127.0.0.1", "21234"]
    setup_launcher("pytorch")  # now every torchrun variable is there


@pytest.mark.slow
def test_sigint_checkpoints_a_classification_run_at_the_next_step(data, checkpoint, tmp_path, monkeypatch):
    """Ctrl-C (SIGINT) mid-epoch: the step finishes, a checkpoint of it is saved, the run stops and records nothing."""
    import os
    import signal

    from dropbench.pretrain import engine
    from dropbench.pretrain.checkpoint import load_checkpoint_file
    from dropbench.pretrain.stop import Preempted

    calls = []
    reseed = engine._reseed

    def reseed_and_interrupt(*args) -> None:  # called once per micro-step: Ctrl-C during the third step
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        reseed(*args)

    monkeypatch.setattr(engine, "_reseed", reseed_and_interrupt)
    with pytest.raises(Preempted, match="stopped by SIGINT at iteration 3; checkpoint saved") as e:
        run_cls(_job("pets", checkpoint, data["pets"], tmp_path / "run", config="smoke", cfg_options=TINY))
    assert e.value.exit_code == 130
    assert load_checkpoint_file(tmp_path / "run" / "checkpoint.pth")["iteration"] == 3
    assert not (tmp_path / "run" / "result.json").exists()


def test_transfer_recipe_records_every_hyperparameter(tmp_path):
    """lr 5e-4, layer decay 0.75 and the per-data-set epochs have no source: result.json carries them all."""
    from dropbench.finetune.cls import build_cls_config, hyperparameters

    cfg = build_cls_config(_cfg_job("flowers102", "vit_tiny", tmp_path, tmp_path / "c.pth", config="transfer"))
    hp = hyperparameters(cfg, world_size=8, precision={"amp": "fp16", "tf32": True})
    assert (hp["lr"], hp["layer_decay"], hp["epochs"], hp["batch_size"], hp["total_batch"]) == (
        5e-4, 0.75, 300, 32, 256)
    assert hp["lr_effective"] == pytest.approx(5e-4 * 256 / 512)
    assert (hp["drop_path"], hp["mixup"], hp["cutmix"], hp["smoothing"], hp["input_size"]) == (0.1, 0.8, 1.0, 0.1, 224)
    assert cfg.runtime.amp == "fp16" and hp["precision"]["amp"] == "fp16"
    assert {"warmup_epochs", "weight_decay", "auto_augment", "re_prob", "crop_pct", "seed"} <= set(hp)
