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
    from evalkit.metrics.stats import proportion_ci

    want = proportion_ci(2, 3)  # Wilson's for 2 of 3 (with the exact Poisson bound at so few counts)
    assert entry["ci"]["payload"] == [round(want.ci_low, 4), round(want.ci_high, 4)]  # (rounded for the table)
    assert 0.05 < want.ci_low < 0.2 and want.ci_high < 1.0
