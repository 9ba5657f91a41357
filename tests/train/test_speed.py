"""``selfsup speed``: counted backbone inputs, a ratio from them, FLOP/s, memory, Markdown and JSON."""
import json

import pytest
import torch

from selfsup.backbones.profile import count_flops
from selfsup.cli import main
from selfsup.train import speed
from selfsup.train.build import load_checked_config
from selfsup.train.speed import BackboneCall, format_markdown, format_report, measure_speed

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["data.subset=64", "backbone.width=0.125", "train.batch_size=4", "train.precision=fp32"]


@pytest.fixture(scope="module")
def results(one_thread):
    return {name: measure_speed(load_checked_config(name, TINY), steps=1, warmup=1, matmul_seconds=0.01)
            for name in ("simclr", "rotation")}


def test_speed_counts_each_methods_backbone_inputs(results):
    assert results["simclr"]["backbone_inputs_per_step"] == 2 * 4  # two views per image
    assert results["rotation"]["backbone_inputs_per_step"] == 4 * 4  # four rotations per image
    for r in results.values():
        assert r["backbone_inputs_with_grad"] == r["backbone_inputs_per_step"]
        assert r["view_sizes"] == ["28x28"] and r["precision"] == "fp32" and r["compile"] == "off"


def test_calls_through_features_are_counted_with_their_channels():
    """Colorization calls ``backbone.features`` (not forward) on its 1-channel L input."""
    from selfsup.data.batch import Batch
    from selfsup.train.build import load_train_data, method_from_config

    cfg = load_checked_config("colorization", ["data.subset=8", "backbone.width=0.125"])
    data = load_train_data(cfg)
    method = method_from_config(cfg, data).train()
    images = torch.from_numpy(data.images[:4]).permute(0, 3, 1, 2).contiguous()
    calls = speed.backbone_calls(method, Batch(images, torch.arange(4)), None)
    assert [(c.n, c.channels, c.grad) for c in calls] == [(4, 1, True)]
    assert "features" not in vars(method.backbone)  # the counting wrapper is gone afterwards


def test_rates_ratio_and_flops_follow_from_the_counted_inputs_and_the_step_times(results):
    from selfsup.backbones import build_backbone

    per_input = count_flops(build_backbone("resnet18_v1", width=0.125, stem="small"), 28)
    for r in results.values():
        n = r["backbone_inputs_per_step"]
        assert r["images_per_s"] == pytest.approx(4 / r["step_s"])
        assert r["backbone_inputs_per_s"] == pytest.approx(n / r["step_s"])
        assert r["bare_inputs_per_s"] == pytest.approx(n / r["bare_step_s"])
        assert r["ratio"] == pytest.approx(r["bare_step_s"] / r["step_s"])
        assert 0 < r["ratio"] < 5  # a bare backbone step is not 5x slower than the step around it
        assert r["backbone_gflop_per_step"] == pytest.approx(3 * n * per_input / 1e9)
        assert r["achieved_flops"] == pytest.approx(3 * n * per_input / r["step_s"])
        assert r["of_matmul_peak"] == pytest.approx(r["achieved_flops"] / r["matmul_flops_fp32"])
        assert r["matmul_flops_fp32"] > 1e8 and r["matmul_flops_bf16"] > 1e7
        assert 0.01 < r["peak_mem_mib"] < 1000 and 0.01 < r["bare_peak_mem_mib"] < 1000
        assert r["memory_measure"] == "torch.profiler CPU allocations"


def test_report_and_markdown_show_the_measurements(results):
    r = results["simclr"]
    text = format_report(r)
    assert f"{r['images_per_s']:9.1f} images/s" in text and f"{r['ratio']:9.1%}" in text and "matmul peak" in text
    table = format_markdown(list(results.values())).splitlines()
    assert len(table) == 2 + 2 and table[0].startswith("| method |")
    assert all(row.count("|") == table[0].count("|") for row in table)
    assert table[2].startswith("| simclr | resnet18_v1 x0.125 |") and f"| {r['images_per_s']:.0f} |" in table[2]


def test_no_grad_forwards_count_once_not_three_times(monkeypatch):
    """An EMA/key encoder's forward is a forward only: FLOPs x1, and the bare step does not back-propagate it."""
    calls = [BackboneCall(4, 28, 28, True), BackboneCall(4, 28, 28, False)]
    monkeypatch.setattr(speed, "backbone_calls", lambda method, batch, amp: calls)
    r = measure_speed(load_checked_config("rotation", TINY), steps=1, warmup=1, matmul_seconds=0.01)
    from selfsup.backbones import build_backbone

    per_input = count_flops(build_backbone("resnet18_v1", width=0.125, stem="small"), 28)
    assert r["backbone_inputs_per_step"] == 8 and r["backbone_inputs_with_grad"] == 4
    assert r["backbone_gflop_per_step"] == pytest.approx((3 * 4 + 4) * per_input / 1e9)


def test_compile_failure_is_reported_and_measured_without(monkeypatch, capsys):
    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    r = measure_speed(load_checked_config("rotation", TINY), steps=1, warmup=1, compile=True, matmul_seconds=0.01)
    assert r["compile"].startswith("failed (RuntimeError)") and r["images_per_s"] > 0
    assert "torch.compile failed (RuntimeError: no compiler here)" in capsys.readouterr().out


def test_speed_command_prints_markdown_and_writes_json(tmp_path, capsys, monkeypatch):
    # The command has no matmul budget option and the peaks are the results fixture's to check: a constant here
    # (a CPU without bf16 instructions emulates the bf16 products, which then dominate the test).
    monkeypatch.setattr(speed, "best_matmul_flops", lambda dtype, device, seconds: 1e12)
    path = tmp_path / "speed.json"
    assert main(["speed", "rotation", "simclr", *TINY, "--steps", "1", "--warmup", "1", "--precision", "fp32",
                 "--no-channels-last", "--markdown", "--json", str(path), "--profile", "4"]) == 0
    out = capsys.readouterr().out
    rotation, simclr = json.loads(path.read_text())  # one measurement per config, overrides applied to both
    assert rotation["precision"] == simclr["precision"] == "fp32" and rotation["channels_last"] is False
    assert (rotation["backbone_inputs_per_step"], simclr["backbone_inputs_per_step"]) == (16, 8)
    assert "| rotation | resnet18_v1 x0.125 |" in out and "| simclr | resnet18_v1 x0.125 |" in out
    assert out.count("bare / full time") == 2
    assert out.count("most self time over 3 full steps") == 2 and "convolution" in rotation["profile_table"]


def test_speed_rejects_zero_steps():
    with pytest.raises(ValueError, match="steps"):
        measure_speed(load_checked_config("rotation", TINY), steps=0)


def test_speed_runs_the_epoch_hook_first_so_deepcluster_has_pseudo_labels():
    r = measure_speed(
        load_checked_config("deepcluster", [*TINY, "method.num_clusters=4"]), steps=1, warmup=1, matmul_seconds=0.01
    )
    assert r["backbone_inputs_per_step"] == 4 and r["images_per_s"] > 0
