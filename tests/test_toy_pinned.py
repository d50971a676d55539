"""Pinned toy-evaluator scores: captured from the evaluator before it was split into functions
(one pure function per dimension over precomputed frame features), on real footage and two
corruptions of one held-out toy world; the split must keep every score (to 1e-9, leaving room
only for a different machine's float summation order)."""
import pytest

from tethercache.eval import ToyEvaluator, corrupt
from tethercache.toyworld import render, split_pairs

KEYS = ("imaging_quality", "aesthetic_quality", "subject_consistency", "background_consistency",
        "motion_smoothness", "dynamic_degree", "quality_drift", "revisit_consistency", "subject_return")
PINNED = {
    "real": (0.9962031204193961, 0.8987851388971442, 1.0, 1.0, 0.9972029630081368, 1.0,
             -0.671349730220927, 0.989141583442688, 1.0),
    "noise": (0.6887379693848571, 0.8774185402212283, 0.783753743463633, 0.5935631565266541,
              0.6144976056577517, 1.0, -0.415669617011738, 0.587776780128479, 0.9563314119974772),
    "sprite_swap": (0.9962031204193961, 0.8987851388971442, 0.003075578215736919, 1.0,
                    0.9973924116317253, 1.0, -0.671349730220927, 0.9084371328353882, 0.0),
}


@pytest.fixture(scope="module")
def footage():
    prompt, seed = split_pairs("heldout", 8)[0]     # desert, blue disk and black triangle, fast camera
    frames, poses = render(prompt, seed, 96)
    return prompt, seed, frames, poses


@pytest.mark.parametrize("kind", sorted(PINNED))
def test_scores_equal_those_captured_before_the_split(footage, kind):
    prompt, seed, frames, poses = footage
    video = frames if kind == "real" else corrupt(frames, kind, "mild" if kind == "noise" else "heavy",
                                                  prompt=prompt, seed=seed)
    m = ToyEvaluator().evaluate(video, prompt, poses, hold=1).metrics()
    assert tuple(m[k] for k in KEYS) == pytest.approx(PINNED[kind], rel=1e-9, abs=1e-12)
