"""Bad input to the evaluation step, table-driven: bad arguments and corrupt or foreign files in a
run dir. Each case gives its exit code, no traceback, one line naming the key or path, no compute,
and leaves every file of both runs (a scored good one, the damaged one) byte for byte as it was.
Most cases call `run_request` (the function behind both CLIs); a few go through the real CLIs.
Counting: `len(CASES)` in-process cases plus the CLI ones."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from tethercache.eval.rundir import evaluate_run, run_request
from tethercache.eval.toy_runner import ToyRunEvaluator
from tethercache.toyworld.world import ToyWorld
from tethercache.video import Mp4Writer

PROMPT = "forest scene, hilly bands, white triangle, fast camera"
TOY = {"name": "toy", "prefixes": [], "shard": 0, "num_shards": 1}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A finished, scored toy run: 2 videos of 3 s, its own eval=toy."""
    run = tmp_path_factory.mktemp("scored") / "run"
    samples = []
    for k in range(2):
        sid = f"p000s{k}"
        frames = ToyWorld(PROMPT, k).render(12)[0].numpy().repeat(4, axis=0)
        with Mp4Writer(run / "videos" / f"{sid}.mp4", fps=16, scale=4, lossless=True) as w:
            w.write(frames)
        samples.append({"id": sid, "prompt": PROMPT, "seed": k, "video": f"videos/{sid}.mp4"})
    config = {"backbone": {"name": "toy", "poses": True, "codec": {"view_scale": 4}}, "eval": TOY}
    (run / "record.json").write_text(json.dumps({"status": "complete", "samples": samples, "config": config}))
    evaluate_run(run, None, log=lambda *_: None)
    assert (run / "metrics.json").is_file() and (run / "quality_over_time.png").is_file()
    return run


def checksums(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---- damage done to the second run ---------------------------------------------------------------
def record(change):
    def damage(run):
        rec = json.loads((run / "record.json").read_text())
        (run / "record.json").write_text(json.dumps(change(rec)))
    return damage


def write(rel, data: bytes):
    def damage(run):
        (run / rel).write_bytes(data)
    return damage


def sample(**kw):
    return record(lambda r: {**r, "samples": [{**r["samples"][0], **kw}, *r["samples"][1:]]})


NOISE = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
SCORE = "eval/toy/scores/p000s1.json"
OK_ENTRY = {"video": "p000s1", "source": [1, 2], "config": TOY}

# (id, damage to the second run or None, request changes, what the one line names). "@BAD" is the
# damaged run dir; "@MISSING", "@FILE", "@FOREIGN" are paths the test makes.
CASES = [
    # ---- arguments ---------------------------------------------------------------------------
    ("runs scalar", None, {"runs": "abc"}, "runs"),
    ("runs empty", None, {"runs": []}, "runs"),
    ("runs item not a path", None, {"runs": [5]}, "runs[0]"),
    ("runs missing", None, {"runs": ["@MISSING"]}, "@MISSING"),
    ("runs a file", None, {"runs": ["@FILE"]}, "@FILE"),
    ("runs no run below", None, {"runs": ["@FOREIGN"]}, "@FOREIGN"),
    ("force=no", None, {"force": "no"}, "force"),
    ("force=1", None, {"force": 1}, "force"),
    ("skip_unfinished=yes", None, {"skip_unfinished": "yes"}, "skip_unfinished"),
    ("unknown top key", None, {"seed": 1}, "seed"),
    ("eval.num_shard typo", None, {"eval": {"num_shard": 2}}, "eval.num_shard"),
    ("eval.shard=-1", None, {"eval": {"shard": -1}}, "eval.shard"),
    ("eval.shard=num_shards", None, {"eval": {"shard": 2, "num_shards": 2}}, "eval.shard"),
    ("eval.shard=abc", None, {"eval": {"shard": "abc"}}, "eval.shard"),
    ("eval.shard=true", None, {"eval": {"shard": True}}, "eval.shard"),
    ("eval.num_shards=0", None, {"eval": {"num_shards": 0}}, "eval.num_shards"),
    ("eval.num_shards=-2", None, {"eval": {"num_shards": -2}}, "eval.num_shards"),
    ("eval.num_shards=1.5", None, {"eval": {"num_shards": 1.5}}, "eval.num_shards"),
    ("eval.num_shards huge", None, {"eval": {"num_shards": 10**9}}, "eval.num_shards"),
    ("eval.prefixes scalar", None, {"eval": {"prefixes": "30s"}}, "eval.prefixes"),
    ("eval.prefixes unknown", None, {"eval": {"prefixes": ["45s"]}}, "eval.prefixes"),
    ("eval=nope", None, {"eval": {"name": "nope"}}, "eval"),
    ("eval=none", None, {"eval": {"name": "none"}}, "eval"),
    ("runs not given", None, {"runs": None}, "runs"),
    ("eval.timeout_s=abc", None, {"eval": {"name": "vbench_long", "timeout_s": "abc"}}, "eval.timeout_s"),
    ("eval.timeout_s=0", None, {"eval": {"name": "vbench_long", "timeout_s": 0}}, "eval.timeout_s"),
    ("eval.slow_fast=maybe", None, {"eval": {"name": "vbench_long", "slow_fast": "maybe"}}, "eval.slow_fast"),
    ("eval.dimensions scalar", None, {"eval": {"name": "vbench_long", "dimensions": "imaging_quality"}},
     "eval.dimensions"),
    ("eval=toy on a non-toy run", record(lambda r: {**r, "config": {**r["config"], "backbone": {"name": "tiny"}}}),
     {}, "eval=toy"),
    ("run's own eval=none", record(lambda r: {**r, "config": {**r["config"], "eval": {"name": "none"}}}),
     {"eval": None}, "@BAD"),
    # ---- record.json -------------------------------------------------------------------------
    ("record truncated", write("record.json", b'{"status": "complete", "samp'), {}, "@BAD/record.json"),
    ("record a list", write("record.json", b"[1, 2]"), {}, "@BAD/record.json"),
    ("record a string", write("record.json", b'"complete"'), {}, "@BAD/record.json"),
    ("record binary", write("record.json", NOISE), {}, "@BAD/record.json"),
    ("record no config", record(lambda r: {k: v for k, v in r.items() if k != "config"}), {},
     "@BAD/record.json"),
    ("record no samples", record(lambda r: {k: v for k, v in r.items() if k != "samples"}), {},
     "@BAD/record.json"),
    ("record samples not a list", record(lambda r: {**r, "samples": "p000s0"}), {}, "@BAD/record.json"),
    ("sample without prompt", record(lambda r: {**r, "samples": [{"id": "p000s0", "seed": 0,
                                                                  "video": "videos/p000s0.mp4"}]}),
     {}, "@BAD/record.json"),
    ("sample seed a string", sample(seed="0"), {}, "@BAD/record.json"),
    ("sample id a path", sample(id="../p000s0"), {}, "@BAD/record.json"),
    ("sample video outside", sample(video="../../etc/passwd"), {}, "@BAD/record.json"),
    ("sample ids twice", sample(id="p000s1"), {}, "@BAD/record.json"),
    ("status failed", record(lambda r: {**r, "status": "failed", "reason": "non-finite latents"}), {}, "@BAD"),
    ("no record", lambda run: (run / "record.json").unlink(), {}, "@BAD"),
    ("partial mp4", write("videos/p000s0.partial.mp4", b""), {}, "@BAD"),
    ("listed mp4 missing", lambda run: (run / "videos/p000s1.mp4").unlink(), {}, "@BAD"),
    # ---- videos ------------------------------------------------------------------------------
    ("mp4 empty", write("videos/p000s1.mp4", b""), {}, "@BAD/videos/p000s1.mp4"),
    ("mp4 random bytes", write("videos/p000s1.mp4", NOISE), {}, "@BAD/videos/p000s1.mp4"),
    ("mp4 a text file", write("videos/p000s1.mp4", b"not a video\n"), {}, "@BAD/videos/p000s1.mp4"),
    ("mp4 cut after its header", lambda run: (run / "videos/p000s1.mp4").write_bytes(
        (run / "videos/p000s1.mp4").read_bytes()[:48]), {}, "@BAD/videos/p000s1.mp4"),
    # ---- score files -------------------------------------------------------------------------
    ("score file truncated", write(SCORE, b'{"video": "p0'), {}, f"@BAD/{SCORE}"),
    ("score file binary", write(SCORE, NOISE), {}, f"@BAD/{SCORE}"),
    ("score file a list", write(SCORE, b"[]"), {}, f"@BAD/{SCORE}"),
    ("score file another video", write(SCORE, json.dumps({**OK_ENTRY, "video": "p000s0"}).encode()), {},
     f"@BAD/{SCORE}"),
    ("score file no scores", write(SCORE, json.dumps(OK_ENTRY).encode()), {}, f"@BAD/{SCORE}"),
    ("score file foreign schema", write(SCORE, json.dumps({**OK_ENTRY, "scores": {"full": {"x": 1}}}).encode()),
     {}, f"@BAD/{SCORE}"),
]


def _request(case_request, sweep, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("no runs here")
    fill = {"@MISSING": str(tmp_path / "missing"), "@FILE": str(tmp_path / "file.txt"),
            "@FOREIGN": str(tmp_path / "foreign")}
    req = {"runs": [str(sweep)], "eval": dict(TOY)}
    for key, value in case_request.items():
        if key == "eval" and value is not None:
            req["eval"] = {**TOY, **value} if value.get("name", "toy") == "toy" else value
        elif key == "runs" and isinstance(value, list):
            req["runs"] = [fill.get(v, v) for v in value]
        else:
            req[key] = value
    return req, fill


def _named(named, bad, fill):
    named = named.replace("@BAD", str(bad))
    return fill.get(named, named)


def _setup(scored, tmp_path, damage):
    sweep = tmp_path / "sweep"
    good = shutil.copytree(scored, sweep / "0-good")
    bad = shutil.copytree(scored, sweep / "1-bad")
    if damage:
        (bad / SCORE).parent.mkdir(parents=True, exist_ok=True)
        damage(bad)
    return sweep, good, bad


@pytest.fixture
def no_scoring(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a video was scored before the bad input was refused")
    monkeypatch.setattr("tethercache.eval.toy_runner.ToyRunEvaluator.score", refuse)


def test_enough_cases():
    assert len(CASES) >= 45 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,damage,request_,named", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(name, damage, request_, named, scored,
                                                          tmp_path, no_scoring):
    sweep, good, bad = _setup(scored, tmp_path, damage)
    before = {good: checksums(good), bad: checksums(bad)}
    req, fill = _request(request_, sweep, tmp_path)
    out, err = [], []
    assert run_request(req, log=out.append, err=err.append) == 2, err
    assert not any("Traceback" in m for m in out + err)
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert _named(named, bad, fill) in err[0].removeprefix("error: ").split(": ")[0], err[0]
    assert {good: checksums(good), bad: checksums(bad)} == before
    assert not list(sweep.rglob(".merge-*")) and not list(sweep.rglob("*.tmp"))


def test_skip_unfinished_scores_the_others_and_lists_the_bad_one(scored, tmp_path):
    sweep, good, bad = _setup(scored, tmp_path, write("videos/p000s1.mp4", NOISE))
    (good / "metrics.json").unlink()
    shutil.rmtree(good / "eval")
    before = checksums(bad)
    err = []
    assert run_request({"runs": [str(sweep)], "eval": TOY, "skip_unfinished": True},
                       log=lambda *_: None, err=err.append) == 0
    assert err == [f"skipped: {bad / 'videos/p000s1.mp4'}: not a readable video"
                   + err[0].split("not a readable video", 1)[1]]
    assert (good / "metrics.json").is_file() and checksums(bad) == before


def test_skip_unfinished_still_fails_when_nothing_could_be_scored(scored, tmp_path):
    sweep, _, bad = _setup(scored, tmp_path, write("record.json", b"[]"))
    err = []
    assert run_request({"runs": [str(bad)], "eval": TOY, "skip_unfinished": True},
                       log=lambda *_: None, err=err.append) == 2
    assert len(err) == 1 and err[0].startswith(f"skipped: {bad / 'record.json'}")


def test_corrupt_merged_outputs_are_ours_to_replace(scored, tmp_path):
    _, good, bad = _setup(scored, tmp_path, None)
    for rel in ("metrics.json", "clips.csv", "eval/toy/metrics.json", "quality_over_time.png"):
        (bad / rel).write_bytes(NOISE)
    err = []
    assert run_request({"runs": [str(bad)], "eval": TOY}, log=lambda *_: None, err=err.append) == 0, err
    assert checksums(bad) == checksums(good)


def test_force_rescores_a_corrupt_score_file_of_its_shard(scored, tmp_path):
    _, good, bad = _setup(scored, tmp_path, write(SCORE, b"{"))
    assert run_request({"runs": [str(bad)], "eval": TOY, "force": True}, log=lambda *_: None,
                       err=print) == 0
    assert json.loads((bad / SCORE).read_text())["video"] == "p000s1"
    assert json.loads((bad / "metrics.json").read_text()) == json.loads((good / "metrics.json").read_text())


def test_a_scoring_failure_is_one_line_exit_1_and_the_other_runs_are_scored(scored, tmp_path, monkeypatch):
    sweep, good, bad = _setup(scored, tmp_path, None)
    for run in (good, bad):
        (run / "videos" / "p000s0.mp4").touch()              # one video each to rescore
    original = ToyRunEvaluator.evaluate

    def fails_in_bad(self, *a, run_dir, **k):
        if run_dir == bad:
            raise RuntimeError("CUDA out of memory")
        return original(self, *a, run_dir=run_dir, **k)
    monkeypatch.setattr(ToyRunEvaluator, "evaluate", fails_in_bad)
    before, err = checksums(bad), []
    assert run_request({"runs": [str(sweep)], "eval": TOY}, log=lambda *_: None, err=err.append) == 1
    log = bad / "eval/toy/errors.log"
    assert err == [f"error: {bad}: scoring failed: RuntimeError: CUDA out of memory (traceback: {log})"]
    assert "Traceback" in log.read_text()
    assert {k: v for k, v in checksums(bad).items() if k != "eval/toy/errors.log"} == before
    rescored = json.loads((good / "eval/toy/scores/p000s0.json").read_text())      # the good run went on
    assert rescored["source"][1] == (good / "videos/p000s0.mp4").stat().st_mtime_ns


def test_an_empty_dir_is_nothing_to_score_in_one_line(tmp_path):
    (tmp_path / "sweep").mkdir()
    err = []
    assert run_request({"runs": [str(tmp_path / "sweep")], "eval": TOY}, err=err.append) == 0
    assert err == [f"nothing to score: {tmp_path / 'sweep'}: empty, no runs in it yet"]
    assert list((tmp_path / "sweep").iterdir()) == []


# ---- through the real CLIs (each costs a few seconds of start-up) ---------------------------------
def _cli(args, **kw):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, **kw)


def test_bad_input_through_both_clis(scored, tmp_path):
    _, good, _ = _setup(scored, tmp_path, None)
    before = checksums(good)
    out = tmp_path / "score-out"
    for args, named in [(["-m", "tethercache.eval", str(good), "eval=toy", "eval.num_shard=2"], "eval.num_shard: unknown key"),
                        (["score.py", "runs=abc", "eval=toy"], "runs"),
                        (["score.py", f"runs=[{good}]", "eval=toy", "eval.num_shard=2"], "eval.num_shard: unknown key")]:
        r = _cli([*args, f"hydra.run.dir={out}"] if args[0] == "score.py" else args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr + r.stdout and named in r.stderr, (args, r.stderr)
        assert r.stderr.strip().splitlines() == [r.stderr.strip()] and r.stderr.startswith("error: ")
        assert not out.exists() and checksums(good) == before


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs unshare and root for a read-only bind mount")
def test_a_read_only_run_dir_is_refused_before_any_work(scored, tmp_path):
    _, good, _ = _setup(scored, tmp_path, None)
    (good / "videos" / "p000s1.mp4").touch()                 # one video to rescore
    before = checksums(good)
    script = (f"mount --bind {good} {good} && mount -o remount,bind,ro {good} && "
              f"{sys.executable} -m tethercache.eval {good} eval=toy eval.prefixes=[]")
    r = _cli(["-c", f"import subprocess, sys; sys.exit(subprocess.call(['unshare', '-m', "
                    f"'--propagation', 'private', 'sh', '-c', {script!r}]))"])
    if "mount" in r.stderr and "permission denied" in r.stderr.lower():
        pytest.skip("bind mounts not allowed here")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"error: {good}: not writable (scores and metrics are written there); not scored"
    assert checksums(good) == before
