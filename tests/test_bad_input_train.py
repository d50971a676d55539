"""The toy trainer's command line: it never replaces weights unasked, and bad arguments are one
line `error: --flag=...` with exit code 2 before any work, leaving nothing behind (the shipped
weights' checksums included)."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import ROOT
from tethercache.toyworld import train

QUICK = ["--steps", "1", "--batch", "1", "--clip", "3", "--warmup", "0", "--log-every", "1",
         "--threads", "1", "--ckpt-every", "0", "--p-clean", "0"]


def shipped_checksums() -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(train.WEIGHTS_DIR.iterdir())
            if p.is_file()}


@pytest.fixture(scope="module")
def shipped():
    return shipped_checksums()


def tree(root) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_default_out_is_a_fresh_dir_and_leaves_the_shipped_weights_alone(tmp_path, monkeypatch, shipped):
    """A quick training without --out writes under outputs/toy_model/, never into the package."""
    monkeypatch.chdir(tmp_path)
    train.main(QUICK)
    [weights] = (tmp_path / "outputs" / "toy_model").glob("*/*/toy_wan.safetensors")
    assert (weights.parent / "MODEL_CARD.md").exists()
    assert shipped_checksums() == shipped


def test_an_out_dir_holding_weights_needs_overwrite(tmp_path, capsys, shipped):
    out = tmp_path / "run"
    train.main([*QUICK, "--out", str(out)])
    before = (out / "toy_wan.safetensors").read_bytes()
    for target in (out, train.WEIGHTS_DIR):
        with pytest.raises(SystemExit) as e:
            train.main([*QUICK, "--out", str(target)])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith("error: --out=") and "--overwrite" in err, err
    assert (out / "toy_wan.safetensors").read_bytes() == before and shipped_checksums() == shipped
    train.main([*QUICK, "--out", str(out), "--overwrite", "--seed", "1"])
    assert (out / "toy_wan.safetensors").read_bytes() != before


def _fixtures(tmp_path) -> dict:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "not.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    return {"@FILE": tmp_path / "a_file", "@NOTST": tmp_path / "not.safetensors",
            "@OTHER": tmp_path / "other.safetensors", "@MISSING": tmp_path / "missing.safetensors"}


CASES = [   # (argv, the flag the one line must name)
    (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"), (["--lr", "-1e-3"], "--lr"), (["--lr", "0"], "--lr"),
    (["--lr", "abc"], "--lr"),
    (["--log-every", "0"], "--log-every"), (["--threads", "0"], "--threads"), (["--threads", "-2"], "--threads"),
    (["--steps", "0"], "--steps"), (["--steps", "-5"], "--steps"), (["--steps", "1.5"], "--steps"),
    (["--steps", "10", "--warmup", "11"], "--warmup"), (["--warmup", "-1"], "--warmup"),
    (["--ema", "1"], "--ema"), (["--ema", "-0.1"], "--ema"), (["--ema", "nan"], "--ema"), (["--ema", "1.5"], "--ema"),
    (["--batch", "0"], "--batch"), (["--clip", "4"], "--clip"), (["--clip", "0"], "--clip"),
    (["--weight-decay", "-1"], "--weight-decay"), (["--weight-decay", "inf"], "--weight-decay"),
    (["--p-clean", "1.5"], "--p-clean"), (["--p-clean", "nan"], "--p-clean"),
    (["--sigma-min", "0"], "--sigma-min"), (["--sigma-min", "1"], "--sigma-min"),
    (["--seed", "-1"], "--seed"), (["--ckpt-every", "-1"], "--ckpt-every"), (["--stop-at", "0"], "--stop-at"),
    (["--sprite-weight", "0"], "--sprite-weight"), (["--sprite-weight", "inf"], "--sprite-weight"),
    (["--sprite-clips", "2"], "--sprite-clips"), (["--sprite-clips", "nan"], "--sprite-clips"),
    (["--sprite-size", "20"], "--sprite-size"), (["--sprite-size", "3"], "--sprite-size"),
    (["--band-amp", "2"], "--band-amp"), (["--band-amp", "nan"], "--band-amp"),
    (["--sprite-layout", "top"], "--sprite-layout"),
    (["--sprite-layout", "start", "--sprite-size", "14"], "--sprite-size"),
    (["--device", "tpu"], "--device"), (["--nope", "1"], "--nope"),
    (["--out", "@FILE"], "--out"), (["--out", "@FILE/below"], "--out"),
    (["--init", "@MISSING"], "--init"), (["--init", "@FILE"], "--init"), (["--init", "@NOTST"], "--init"),
    (["--init", "@OTHER"], "--init"),
]


@pytest.mark.parametrize("argv,flag", CASES, ids=[" ".join(c) for c, _ in CASES])
def test_bad_argument_is_one_line_naming_the_flag_exit_2_nothing_written(
        argv, flag, tmp_path, capsys, monkeypatch, shipped):
    paths = _fixtures(tmp_path)
    argv = [next((str(p) + a[len(t):] for t, p in paths.items() if a.startswith(t)), a) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        train.main([*QUICK, *argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and flag in lines[0].removeprefix("error: ").split(": ")[0], lines[0]
    assert tree(tmp_path) == before
    assert shipped_checksums() == shipped


def test_cases_cover_the_flags():
    named = {flag for _, flag in CASES}
    assert len(CASES) >= 40 and {"--lr", "--log-every", "--threads", "--steps", "--warmup", "--ema", "--out",
                                 "--init", "--sprite-layout"} <= named


def test_unwritable_out_dir_is_refused_before_any_work():
    """As an unprivileged user (root writes everywhere): a read-only parent is refused, nothing made."""
    base = Path(tempfile.mkdtemp())          # pytest's tmp dirs are private to their owner
    base.chmod(0o755)
    locked = base / "locked"
    locked.mkdir(mode=0o555)
    try:
        _refused_as_nobody(locked)
    finally:
        shutil.rmtree(base)


def _refused_as_nobody(locked):
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if drop and subprocess.run([*drop, "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot drop privileges here")
    r = subprocess.run([*drop, sys.executable, "-m", "tethercache.toyworld.train", *QUICK,
                        "--out", str(locked / "run")], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith(f"error: --out={locked / 'run'}: "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not any(locked.iterdir())
