"""End to end: train --smoke and eval through their main(argv); resume; the run-machinery contract of issue 18
(NaN stops the run, an unused --data-root is refused, eval writes only inside the run folder, same seed = same
metrics); the README's quoted default output; bad inputs."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import definet.train
from definet.eval import main as eval_main
from definet.reproduce import build_tables
from definet.train import main as train_main
from shared.results import check_default_output
from shared.runs import non_finite_tensors

README = Path(__file__).resolve().parents[1] / "README.md"
SMOKE = ["--smoke", "--device", "cpu", "--threads", "1"]


def weights(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / name / "weights.safetensors")


def metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run = train_main([*SMOKE, "--out", str(tmp_path_factory.mktemp("smoke") / "runs")])
    return run, out.getvalue()


def test_train_smoke_writes_run_folder(smoke_run):
    run, _ = smoke_run
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["data"]["image_size"] == 32 and config["config"]["model"]["arch"] == "definet"
    assert config["meta"]["threads"] == 1
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["edge"] > 0 for r in rows)
    assert any(k.startswith("model.backbone.") for k in weights(run, "best"))
    train = json.loads((run / "eval.json").read_text())["train"]
    assert set(train["splits"]) == {"test/telea", "test/ns", "test/exemplar", "test/biharmonic"}
    for s in train["splits"].values():
        assert 0 <= s["auc"] <= 1 and 0 <= s["iou"] <= 1
        assert 0 <= s["edge_head_auc"] <= 1 and 0 <= s["edge_mask_auc"] <= 1  # edges scored too
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_readme_quotes_the_default_output_format(smoke_run):
    check_default_output(README, smoke_run[1])


def test_eval_reproduces_train_metrics_and_writes_only_inside_the_run(smoke_run, tmp_path, monkeypatch):
    run, _ = smoke_run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    outside = {p: p.stat().st_mtime_ns for p in run.parent.parent.rglob("*") if run not in p.parents and p != run}
    report = eval_main([str(run), "--device", "cpu", "--quiet", "--figures", "2", "--threads", "1"])
    after = {p: p.stat().st_mtime_ns for p in run.parent.parent.rglob("*") if run not in p.parents and p != run}
    assert after == outside and not any(elsewhere.iterdir())
    saved = json.loads((run / "eval.json").read_text())
    assert saved["eval"]["checkpoint"]["name"] == "best" and "train" in saved  # merged, train's section kept
    for name, entry in report["splits"].items():
        assert entry["auc"] == pytest.approx(saved["train"]["splits"][name]["auc"], abs=1e-6)
        assert entry["edge_head_auc"] == pytest.approx(saved["train"]["splits"][name]["edge_head_auc"], abs=1e-6)
        assert (run / entry["figure"]).is_file()


def test_eval_on_image_folder(smoke_run, tmp_path):
    run, _ = smoke_run
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "imgs" / f"x{i}.png"), rng.integers(0, 255, (45, 37, 3), np.uint8))
        mask = np.zeros((45, 37), np.uint8)
        mask[10:30, 5:20] = 255
        cv2.imwrite(str(tmp_path / "masks" / f"x{i}.png"), mask)
    report = eval_main([str(run), "--images", str(tmp_path / "imgs"), "--masks", str(tmp_path / "masks"),
                        "--device", "cpu", "--quiet", "--threads", "1"])
    assert report["splits"]["imgs"]["n_images"] == 2 and 0 <= report["splits"]["imgs"]["f1_macro"] <= 1
    pred = cv2.imread(str(run / "eval-imgs" / "predictions" / "x1.png"), cv2.IMREAD_GRAYSCALE)
    assert pred.shape == (45, 37)  # predictions at the input image's own size
    with pytest.raises(FileNotFoundError, match="no image files"):
        eval_main([str(run), "--images", str(tmp_path / "masks" / ".."), "--device", "cpu", "--threads", "1"])


def test_same_seed_same_metrics_and_resume_matches_uninterrupted(smoke_run, tmp_path):
    run, _ = smoke_run
    first = train_main([*SMOKE, "--quiet", "--out", str(tmp_path), "epochs=1"])
    resumed = train_main(["--resume", str(first), "--quiet", "--threads", "1", "epochs=2"])
    assert resumed == first
    assert metrics(first) == metrics(run)  # same seed: identical metrics, resumed or not
    a, b = weights(run, "last"), weights(first, "last")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_stops_the_run(tmp_path, monkeypatch, capsys):
    """A NaN loss at the first step after a checkpoint set exists stops the run with exit status 3 and a message
    naming the step and the quantity; the saved sets stay finite."""
    real = definet.train.definet_loss

    def nan_loss(*args, **kwargs):
        out = real(*args, **kwargs)
        if any(tmp_path.rglob("manifest.json")):
            return {**out, "loss": out["loss"] * float("nan")}
        return out

    monkeypatch.setattr(definet.train, "definet_loss", nan_loss)
    with pytest.raises(SystemExit) as exc:
        train_main([*SMOKE, "--quiet", "--out", str(tmp_path)])
    assert exc.value.code == 3
    assert "diverged at step" in capsys.readouterr().err and "loss" in str(exc.value.__cause__)
    assert non_finite_tensors(tmp_path) == []  # the epoch-1 sets exist and are finite


def test_unused_data_root_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train_main([*SMOKE, "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path)])
    assert exc.value.code == 2 and "data.source=folder" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing created


def test_bad_inputs(smoke_run, tmp_path, capsys):
    run, _ = smoke_run
    with pytest.raises(SystemExit):  # unknown config key -> argparse error naming the valid keys
        train_main([*SMOKE, "--out", str(tmp_path), "model.depth=3"])
    with pytest.raises(SystemExit) as exc:  # a real-dataset config with a missing root: the expected layout
        train_main([*SMOKE, "--out", str(tmp_path / "runs"), "data.source=folder",
                    "--data-root", str(tmp_path / "missing")])
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train_main([*SMOKE, "--out", str(tmp_path / "runs"), "data.image_size=36"])
    assert exc.value.code == 2 and "multiple of 8" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    with pytest.raises(SystemExit) as exc:
        eval_main([str(tmp_path), "--device", "cpu"])
    assert exc.value.code == 2 and "not a run folder" in capsys.readouterr().err
    broken = tmp_path / "broken"
    (broken / "checkpoints" / "best").mkdir(parents=True)
    for name in ("config.json", "status.json"):
        (broken / name).write_text((run / name).read_text())
    for f in (run / "checkpoints" / "best").iterdir():
        (broken / "checkpoints" / "best" / f.name).write_bytes(f.read_bytes())
    (broken / "checkpoints" / "best" / "weights.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exc:
        eval_main([str(broken), "--device", "cpu"])
    assert exc.value.code == 2
    assert (run / "checkpoints" / "best" / "weights.safetensors").is_file()  # nothing already written was lost


def test_paired_differences_in_the_results_tables():
    """reproduce.build_tables pairs models by seed: hand-made scores give hand-computed differences."""
    models = {"A": ("ImageNet", "DeFI-Net", []), "B": ("ImageNet", "DeFI-Net w/o REAM", []),
              "C": ("ImageNet", "U-Net", [])}
    aucs = {"A": [0.8, 0.7, 0.9], "B": [0.7, 0.7, 0.7], "C": [0.75, 0.8, 0.7]}
    raw = {name: {str(seed): {"parameters": 1, "splits": {
        s: {"auc": auc, "f1_macro": auc, "f1": auc, "iou": auc, "edge_mask_auc": 0.5, "edge_mask_f1_macro": 0.5,
            "edge_mask_iou": 0.1} for s in ("test/telea", "test/biharmonic")}}
        for seed, auc in enumerate(values)} for name, values in aucs.items()}
    tables = build_tables(raw, models, ["test/telea"], ["test/biharmonic"])
    row = next(r for r in tables["paired"]["rows"] if r[0] == "DeFI-Net − U-Net" and r[1] == "in-method")
    d = np.array([0.05, -0.1, 0.2])
    assert row[2] == f"{d.mean():+.3f} ± {d.std(ddof=1):.3f}" and row[3] == "2/3"
    assert tables["in_method"]["rows"][0][3] == f"{0.8:.3f} ± {np.std([0.8, 0.7, 0.9], ddof=1):.3f}"
    assert tables["edges"]["rows"][0][3] is None  # no edge head scores given: shown as a dash
