"""End to end: train.py --smoke, train_judge.py --smoke, eval.py on the result; reload; bad inputs."""

import json
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

import eval as eval_script  # noqa: E402
import train  # noqa: E402
import train_judge  # noqa: E402
from conddiff.pipeline import load_pipeline  # noqa: E402


def test_train_eval_smoke_and_reload(tmp_path):
    judge = train_judge.main(["--smoke", "--out", str(tmp_path / "judge"), "--device", "cpu"])
    noisy = train_judge.main(["--smoke", "--noise-aware", "--out", str(tmp_path / "noisy"), "--device", "cpu"])
    run = train.main(["--smoke", "--out", str(tmp_path / "runs"), "--device", "cpu", "--quiet", f"judge={judge}"])
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 3 and 0 <= summary["all_acc@cfg3"] <= 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    pipe = load_pipeline(run / "pipeline", "cpu")
    assert pipe.eps(torch.zeros(1, 3, 32, 32), 10, pipe.encode_prompts([""])).shape == (1, 3, 32, 32)
    out = eval_script.main(["--run", str(run), "--smoke", "--device", "cpu", f"judge={judge}",
                            f"noisy_classifier={noisy}"])
    report = json.loads((out / "eval.json").read_text())
    assert set(report) >= {"text_to_image", "inversion", "inpainting", "super_resolution", "editing", "composition"}
    assert report["inpainting"]["replacement (no resampling)"]["known_max_abs_err"] < 1e-5
    sr = report["super_resolution"]
    assert sr["nearest upsampling (A†y)"]["consistency_l2"] < 1e-5 and set(sr) >= {"ILVR (N=2)", "DDNM", "DPS"}
    assert (out / "grid_editing.png").is_file()
    # --resume continues the finished run without redoing steps
    train.main(["--resume", str(run), "--quiet"])
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="unet/"):
        load_pipeline(tmp_path, "cpu")
    with pytest.raises(SystemExit):
        train.main(["--smoke", "--out", str(tmp_path), "no_such_key=1"])
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        train.main(["--smoke", "--out", str(tmp_path), "--data-root", str(tmp_path / "missing"), "--quiet"])
    run = tmp_path / "corrupt"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {}}))
    (run / "checkpoints" / "last.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Exception, match="(?i)safetensors|header|corrupt|deserializ"):
        train.main(["--resume", str(run), "--quiet"])
    from conddiff.classifier import AttributeClassifier
    with pytest.raises(FileNotFoundError, match="train_judge"):
        AttributeClassifier.load(tmp_path)
