from selfsup.train.bench import bench_training


def test_bench_counts_each_methods_backbone_inputs_and_reports_a_ratio():
    rows = {r["method"]: r for r in bench_training(["simclr", "rotation"], size=16, batch_size=4, steps=1)}
    assert rows["simclr"]["views_per_s"] == 2 * rows["simclr"]["images_per_s"]
    assert rows["rotation"]["views_per_s"] == 4 * rows["rotation"]["images_per_s"]
    assert all(r["ratio"] > 0 for r in rows.values())
