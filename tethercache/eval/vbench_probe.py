"""Run by the VBench venv's interpreter (`<eval.python> tethercache/eval/vbench_probe.py`): prints
one JSON line saying what imports there and whether a CUDA GPU is visible. Standalone on purpose:
it imports nothing from tethercache (that venv has vbench's pins, not ours)."""
import json
import sys


def probe() -> dict:
    out = {"python": sys.version.split()[0]}
    try:
        import torch
        out.update(torch=torch.__version__, cuda=torch.cuda.is_available(),
                   gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
        import numpy
        import transformers
        out.update(numpy=numpy.__version__, transformers=transformers.__version__)
        import importlib
        from importlib.metadata import version
        # every dimension module long_custom_input can score (they import CLIP, DreamSim, pyiqa, AMT,
        # RAFT code: no weights are loaded at import)
        for dim in ("subject_consistency", "background_consistency", "motion_smoothness", "dynamic_degree",
                    "aesthetic_quality", "imaging_quality", "temporal_flickering"):
            importlib.import_module(f"vbench2_beta_long.{dim}")
        out.update(vbench=version("vbench"), vbench_long=True)
    except Exception as e:  # report, never raise: the caller turns this into one line
        out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return out


if __name__ == "__main__":     # importable (the evaluator registry imports every module)
    out = probe()
    print(json.dumps(out))
    sys.exit(1 if "error" in out else 0)     # make vbench-env fails when vbench does not import
