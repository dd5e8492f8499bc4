"""The robustness grid's summary gives each rate with its 95% interval (session 30: bare rates
over the quick grid's 6 clips)."""

from __future__ import annotations

from benchmarks.robustness.watermark import summarize


def test_every_rate_of_the_summary_has_its_interval():
    rows = [{"attack": "h264_crf40", "group": "world64", "bit_acc": b, "payload_ok": ok, "detected": ok,
             "psnr": 42.0} for b, ok in ((1.0, True), (0.9, True), (0.6, False))]
    _, table = summarize(rows, ["h264_crf40"])
    entry = table["h264_crf40"]
    assert entry["n"] == 3 and abs(entry["bit_acc"] - 2.5 / 3) < 1e-12
    for m in ("bit_acc", "payload", "detect", "known"):
        lo, hi = entry["ci"][m]
        assert 0.0 <= lo < entry[m] <= hi <= 1.0, m
    assert entry["ci"]["payload"][1] < 1.0 and entry["ci"]["payload"][0] > 0.1  # Wilson's for 2 of 3
