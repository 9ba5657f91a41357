"""Reading run folders for the report: training time from the logged throughput."""
from selfsup.runs.report.collect import training_minutes


def test_training_minutes_ignores_probe_records_between_log_records():
    records = [{"step": 10, "loss": 1.0, "img_per_s": 100.0}, {"step": 15, "val_knn_top1": 50.0, "probe_s": 3.0},
               {"step": 20, "loss": 0.9, "img_per_s": 50.0}]
    assert training_minutes(records, batch_size=60) == (10 * 60 / 100 + 10 * 60 / 50) / 60
    assert training_minutes([{"step": 5, "val_knn_top1": 10.0}], batch_size=60) is None
