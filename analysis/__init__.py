"""Analysis of run dirs under outputs/: collect -> tables / drift plots / memory recall.

Every tool reads only what a run wrote (record.json, metrics.json, clips.csv, timelines/), never
the model, so it runs on a laptop over results copied from a GPU cluster.
"""
