"""End to end: train.py --smoke (a tiny base model through conddiff's training code), eval.py on it, reload; bad
inputs give clear errors."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

import eval as eval_script  # noqa: E402
import train  # noqa: E402
from conddiff.pipeline import load_pipeline  # noqa: E402


def test_train_eval_smoke_and_reload(tmp_path):
    run = train.main(["--smoke", "--out", str(tmp_path / "runs"), "--device", "cpu", "--quiet"])
    info = json.loads((run / "base.json").read_text())
    assert info["trained"] and Path(info["pipeline"]).is_dir()
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["check_records"] == 1 and 0 <= summary["aspect_acc"] <= 1
    pipe = load_pipeline(info["pipeline"], "cpu")
    assert pipe.eps(torch.zeros(1, 3, 32, 32), 10, pipe.encode_prompts([""])).shape == (1, 3, 32, 32)
    out = eval_script.main(["--run", str(run), "--smoke", "--device", "cpu", "--quiet"])
    report = json.loads((out / "eval.json").read_text())
    assert set(report["summary"]) == {"ParallelEdits", "sequential", "P2P"}
    for method, by in report["summary"].items():
        assert {"1", "3+", "all"} <= set(by) and 0 <= by["all"]["aspect_acc"] <= 1
    rows = report["rows"]
    assert len(rows) == 2 * 3 and {r["n_aspects"] for r in rows} == {1, 3}
    par = [r for r in rows if r["method"] == "ParallelEdits"]
    seq = [r for r in rows if r["method"] == "sequential"]
    # one grouping pass (2 steps) + one editing pass (3 steps) per edit; sequential: one such edit per aspect
    assert [r["unet_calls"] for r in par] == [5, 5] and [r["unet_calls"] for r in seq] == [5, 15]
    assert (out / "grid.png").is_file()
    assert report["oracle_target_render"]["aspect_acc"] == 1.0  # the judge reads the target renders exactly
    # the real-data path on a hand-made PIE-Bench folder (same code as PIE-Bench / PIE-Bench++ at full size)
    root = tmp_path / "pie"
    (root / "annotation_images" / "1_change_object_80").mkdir(parents=True)
    from PIL import Image

    from shared.data import shapes_world as sw

    img = np.zeros((64, 64, 3), np.uint8)
    img[20:40, 20:40] = (230, 30, 30)
    Image.fromarray(img).save(root / "annotation_images" / "1_change_object_80" / "1.png")
    mask = np.zeros((64, 64), bool)
    mask[18:42, 18:42] = True
    (root / "mapping_file.json").write_text(json.dumps({"100000000001": {
        "image_path": "1_change_object_80/1.png", "original_prompt": "a big red square on a black background",
        "editing_prompt": "a big [blue] square on a black background", "editing_type_id": "6",
        "blended_word": "square square", "mask": sw.rle_encode(mask)}}))
    real = eval_script.main(["--smoke", "--device", "cpu", "--quiet", "--out", str(tmp_path / "real"), "--data-root",
                             str(root), "dataset=pie_bench", f"pipeline={info['pipeline']}",
                             "methods=[ParallelEdits,P2P]"])
    rep = json.loads((real / "eval.json").read_text())
    assert [r["method"] for r in rep["rows"]] == ["ParallelEdits", "P2P"] and rep["rows"][0]["n_aspects"] == 1
    assert rep["summary"]["ParallelEdits"]["psnr"] > 0
    # --resume reuses the run's base model (the finished conddiff run is not trained again) and redoes the check
    assert train.main(["--resume", str(run), "--quiet", "--device", "cpu"]) == run
    assert json.loads((run / "base.json").read_text()) == info


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="base.json"):
        eval_script.main(["--run", str(tmp_path), "--smoke", "--device", "cpu"])
    with pytest.raises(ValueError, match="unknown method"):
        eval_script.main(["--smoke", "--device", "cpu", "--out", str(tmp_path), "methods=[magic]"])
    with pytest.raises(ValueError, match="unknown dataset"):
        eval_script.main(["--smoke", "--device", "cpu", "--out", str(tmp_path), "dataset=coco"])
    broken = tmp_path / "broken"
    (broken / "unet").mkdir(parents=True)
    (broken / "unet" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="missing"):
        eval_script.main(["--smoke", "--device", "cpu", "--out", str(tmp_path), f"pipeline={broken}"])
    with pytest.raises(FileNotFoundError, match="PIE-Bench"):
        eval_script.main(["--smoke", "--device", "cpu", "--out", str(tmp_path), "dataset=pie_bench",
                          "--data-root", str(tmp_path / "absent")])
    with pytest.raises(SystemExit):
        train.main(["--smoke", "--out", str(tmp_path), "no_such_field=1"])
