"""What a bench run looks like in MLflow: written by `evalkit bench run` (benchmarks/runner.py),
read by `evalkit leaderboard`, `evalkit audit` and the HTML report (reports/). One module, so the
writer and its readers cannot drift apart.

One MLflow run per (suite, model) in the experiment `experiment_name(suite)`:

- tags: `TAG_KIND` = "bench", `TAG_SUITE`, `TAG_SUITE_HASH`, `TAG_MODEL` (the model spec as given),
  `TAG_ROLE` (one of ROLES), `TAG_RUN_KEY` (a hash of suite hash, model spec, weights hash and
  generation settings: a run started again with the same key resumes into the same MLflow run,
  never a duplicate), `TAG_COMPLETE` = "true" once every artifact and metric is logged.
- params: model, weights_sha256, sampler, steps, guidance, guidance_convention, n_clips,
  samples_per_prompt, seeds, and the backbones' names and weights hashes (flattened keys).
- metrics: every entry of `SCORE_METRICS` and the others below through
  `evalkit.tracking.log_metric_ci(name, value, ci_low, ci_high, n)`, i.e. four MLflow metrics
  `name`, `name_ci_low`, `name_ci_high`, `name_n` (names sanitised by `tracking.sanitize_name`).
- artifacts: `ARTIFACT_PER_CLIP` (JSON list, one row a clip, keys in `PER_CLIP_KEYS`; paired
  bootstraps between models match rows by `prompt` and `seed`), `ARTIFACT_SCORES` (the
  `score_folders` JSON without per_clip), `ARTIFACT_FEATURES` (the FVD backbone's features of
  each clip and of the reference: the leaderboard's paired FVD/KVD test), `ARTIFACT_GRID`
  (sample frames), `ARTIFACT_BUNDLE` and
  `ARTIFACT_BUNDLE_SIG` (the signed result bundle).
"""

from __future__ import annotations

EXPERIMENT_PREFIX = "evalkit-bench-"


def experiment_name(suite_name: str) -> str:
    return EXPERIMENT_PREFIX + suite_name


TAG_KIND = "evalkit.kind"
KIND_BENCH = "bench"
TAG_SUITE = "evalkit.suite"
TAG_SUITE_HASH = "evalkit.suite_hash"
TAG_MODEL = "evalkit.model"
TAG_ROLE = "evalkit.role"
ROLES = ("model", "ceiling", "control")  # ceiling: `world` (the renderer); control: control:*
TAG_RUN_KEY = "evalkit.run_key"
TAG_COMPLETE = "evalkit.complete"

# Quality metrics, as `evalkit.metrics.score.score_folders` names them (each with CI and N).
SCORE_METRICS = ("fvd", "kvd", "clip_alignment", "clip_retrieval_top1", "flicker", "warp_error",
                 "temporal_hf", "physics_score", "physics_pass_rate")
# Physics split by the suite's parts: in-distribution prompts vs held-out (ood) ones, the gap
# physics_score_id - physics_score_ood with a bootstrap CI, and each law's pass rate per part
# as f"physics_law.{law}.{part}" (part "id" or "ood").
PHYSICS_PART_METRICS = ("physics_score_id", "physics_score_ood", "physics_ood_gap")
# Provenance and detection over the run's clips (rates with Wilson CIs):
SAFETY_METRICS = ("provenance_valid_rate",      # signed clips whose manifest verifies valid/trusted
                  "watermark_survival_crf30",   # watermark decoded with the right payload after CRF 30
                  "detector_catch_rate")        # clips the default detector flags at its threshold
# Cost (n = clips; a bootstrap CI over the clips' shard timings since session 27): clips per second of
# wall time, CPU- and GPU-seconds per clip, and joules per clip where NVML reports power (absent otherwise).
COST_METRICS = ("cost.clips_per_s", "cost.cpu_s_per_clip", "cost.gpu_s_per_clip", "cost.energy_j_per_clip")

# Lower is better for these; higher is better for every other metric.
LOWER_IS_BETTER = frozenset({"fvd", "kvd", "warp_error", "temporal_hf", "physics_ood_gap",
                             "cost.cpu_s_per_clip", "cost.gpu_s_per_clip", "cost.energy_j_per_clip"})

ARTIFACT_PER_CLIP = "per_clip.json"
PER_CLIP_KEYS = ("id", "prompt", "part", "seed", "sha256", "clip_alignment", "flicker", "warp_error",
                 "physics_score", "physics_pass", "physics_laws", "signed_valid",
                 "watermark_survives_crf30", "p_generated", "detected")
ARTIFACT_SCORES = "scores.json"
# the FVD backbone's features of every clip (with its id, prompt and seed) and of the reference:
# what a paired bootstrap of two models' FVD and KVD needs (`reports.leaderboard`, since session 36)
ARTIFACT_FEATURES = "fvd_features.json"
ARTIFACT_GRID = "grid.png"
ARTIFACT_BUNDLE = "bundle/bundle.json"
ARTIFACT_BUNDLE_SIG = "bundle/bundle.sig"
