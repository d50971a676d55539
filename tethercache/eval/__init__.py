"""Evaluation: one score schema (VBench-Long's dimensions), the toy evaluator, test corruptions."""
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt
from .schema import (CLIP_SECONDS, DIMENSIONS, DRIFT_SECONDS, ClipScores,
                     VideoScores, quality_drift, write_clip_csv, write_metrics_json)
from .toy import ToyEvaluator
