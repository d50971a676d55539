"""Bad input to the analysis commands, table-driven per tool (collect, tables, contrasts, report),
called in-process (main(argv), stderr captured):

- bad arguments: exit 2, exactly one line `error: ...` naming the flag or path, nothing written;
- corrupt or foreign files in one run dir of a sweep: the tool names the file and the run in one
  line, still does its job for the good runs (exit 0), and lists the bad run beside them;
- empty inputs (a folder with no runs): one line, exit 0, nothing written;
- in every case the inputs' checksums are unchanged, and no traceback escapes.
The report's output folder: files it did not write are never deleted or overwritten."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from fake_runs import write_run, write_sweep
from analysis import collect, contrasts, report, tables
from analysis.report import MANIFEST

TOOLS = {"collect": collect.main, "tables": tables.main, "contrasts": contrasts.main,
         "report": report.main}
GOOD = ("window", "sink", "tether")
VICTIM = "3-toy-full-5s"                     # the run a case damages; the others stay good


def tool_args(tool: str, roots, out: Path) -> list[str]:
    out = out / "results.csv" if tool == "collect" else out
    extra = {"tables": ["--baseline", "window", "--resamples", "200"],
             "contrasts": ["--baseline", "window", "--resamples", "200"]}.get(tool, [])
    return [*map(str, roots), "--out", str(out), *extra]


def call(tool: str, argv, capsys) -> tuple[int, str]:
    """(exit code, stderr) of one in-process run; an uncaught exception fails the test."""
    capsys.readouterr()
    try:
        TOOLS[tool](list(map(str, argv)))
        code, tail = 0, ""
    except SystemExit as e:                  # sys.exit("error: ...") prints only outside pytest
        code, tail = (1, e.code + "\n") if isinstance(e.code, str) else (e.code or 0, "")
    err = capsys.readouterr().err + tail
    assert "Traceback" not in err, err
    return code, err


def checksums(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine") / "sweep"
    write_sweep(root, GOOD)
    write_run(root / VICTIM, "full", 0.9)
    return root


@pytest.fixture
def sweep(pristine, tmp_path):
    root = tmp_path / "sweep"
    shutil.copytree(pristine, root)
    return root


# ---- bad arguments ----------------------------------------------------------------------------
def _below_file(tmp):
    (tmp / "afile").write_text("x")
    return tmp / "afile" / "out"


def _a_file(tmp):
    (tmp / "afile").write_text("x")
    return tmp / "afile"


# (tool, case name, argv builder (sweep, tmp) -> argv, what the line must name)
ARG_CASES = []
for _tool in TOOLS:
    ARG_CASES += [
        (_tool, "root missing", lambda s, t, tool=_tool: tool_args(tool, [t / "nope"], t / "out"), "nope"),
        (_tool, "root is a file", lambda s, t, tool=_tool: tool_args(tool, [_a_file(t)], t / "out"), "afile"),
        (_tool, "out below a file",
         lambda s, t, tool=_tool: [*tool_args(tool, [s], t / "out"), "--out", str(_below_file(t))], "--out"),
        (_tool, "unknown flag", lambda s, t, tool=_tool: [*tool_args(tool, [s], t / "out"), "--bogus"], "--bogus"),
    ]
ARG_CASES += [
    ("collect", "out is a folder", lambda s, t: [str(s), "--out", str(t)], "--out"),
    ("report", "out is a file", lambda s, t: [str(s), "--out", str(_a_file(t))], "--out"),
    ("tables", "out is a file", lambda s, t: [str(s), "--out", str(_a_file(t))], "--out"),
    ("contrasts", "out is a file", lambda s, t: [str(s), "--baseline", "window", "--out", str(_a_file(t))], "--out"),
    ("report", "preview height too small", lambda s, t: [str(s), "--out", str(t / "out"), "--preview-height", "5"],
     "--preview-height=5"),
    ("report", "preview height not an int", lambda s, t: [str(s), "--out", str(t / "out"), "--preview-height", "abc"],
     "--preview-height=abc"),
    ("report", "contrasts file missing", lambda s, t: [str(s), "--out", str(t / "out"), "--contrasts", str(t / "c.csv")],
     "--contrasts"),
]
for _tool in ("tables", "contrasts"):
    _base = lambda s, t, tool=_tool: tool_args(tool, [s], t / "out")
    ARG_CASES += [
        (_tool, f"resamples {v}", lambda s, t, v=v, b=_base: [*b(s, t), "--resamples", v], f"--resamples={v}")
        for v in ("0", "-5", "abc", "2.5", "99")]
    ARG_CASES += [
        (_tool, "seed negative", lambda s, t, b=_base: [*b(s, t), "--seed", "-1"], "--seed=-1"),
        (_tool, "baseline unknown", lambda s, t, b=_base: [*b(s, t), "--baseline", "nope"], "--baseline=nope"),
    ]
ARG_CASES += [
    ("tables", "ablate unknown key", lambda s, t: [str(s), "--out", str(t / "out"), "--ablate", "nope"], "--ablate=nope"),
    ("contrasts", "arms unknown", lambda s, t: [*tool_args("contrasts", [s], t / "out"), "--arms", "sink", "nope"],
     "--arms=nope"),
    ("contrasts", "metrics unknown", lambda s, t: [*tool_args("contrasts", [s], t / "out"), "--metrics", "nope"],
     "--metrics=nope"),
    ("contrasts", "metrics one unknown",
     lambda s, t: [*tool_args("contrasts", [s], t / "out"), "--metrics", "quality", "nope"], "--metrics=nope"),
    ("contrasts", "baseline missing", lambda s, t: [str(s), "--out", str(t / "out")], "--baseline"),
]


@pytest.mark.parametrize("tool,name,argv,named", ARG_CASES, ids=[f"{c[0]}: {c[1]}" for c in ARG_CASES])
def test_bad_argument_is_one_line_exit_2_nothing_written(tool, name, argv, named, sweep, tmp_path, capsys):
    before = checksums(sweep)
    args = argv(sweep, tmp_path)
    listing = sorted(p.name for p in tmp_path.iterdir())
    code, err = call(tool, args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert named in lines[0], lines[0]
    if "baseline=nope" in named:                        # names the known arms too
        assert "window" in lines[0] and "tether" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == listing       # nothing written
    assert checksums(sweep) == before


def _ro_mount_works(tmp_path) -> bool:
    if not shutil.which("unshare") or not shutil.which("mount"):
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {tmp_path} {tmp_path}"],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize("tool", list(TOOLS))
def test_unwritable_output_dir_is_refused_before_work(tool, pristine, tmp_path):
    """A read-only bind mount over the output's parent (a private mount namespace: root ignores
    file modes, so chmod would not do)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _ro_mount_works(ro):
        pytest.skip("no private mount namespace here (unshare -m / mount --bind -o ro)")
    argv = " ".join(f"'{a}'" for a in tool_args(tool, [pristine], ro / "out"))
    cmd = f"mount --bind -o ro '{ro}' '{ro}' && exec '{sys.executable}' -m analysis.{tool} {argv}"
    r = subprocess.run(["unshare", "-m", "sh", "-c", cmd], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: --out=") and "not writable" in lines[0], lines[0]
    assert not list(ro.iterdir())


# ---- empty inputs -----------------------------------------------------------------------------
@pytest.mark.parametrize("tool", list(TOOLS))
def test_a_folder_with_no_runs_says_so_and_writes_nothing(tool, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = call(tool, tool_args(tool, [tmp_path / "empty"], tmp_path / "out"), capsys)
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) == 1 and "no run dirs under" in lines[0], err
    assert not (tmp_path / "out").exists()


# ---- corrupt or foreign files in one run dir --------------------------------------------------
def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _random(p: Path):
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())


def _write(text):
    return lambda p: p.write_text(text)


ALL, REPORT, NONE = set(TOOLS), {"report"}, set()
# (case, file in the victim run, damage, tools that read the file, whether the whole run is lost)
CORRUPT = [
    ("record truncated", "record.json", _truncate, ALL, True),
    ("record not an object", "record.json", _write("[1, 2, 3]"), ALL, True),
    ("record random bytes", "record.json", _random, ALL, True),
    ("record complete without fields", "record.json", _write('{"status": "complete"}'), ALL, True),
    ("record complete without horizon", "record.json", lambda p: p.write_text(json.dumps(
        {k: v for k, v in json.loads(p.read_text()).items() if k not in ("horizon", "latent_frames")})),
     ALL, True),
    ("record samples without ids", "record.json", lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "samples": [{"prompt": "x"}]})), ALL, True),
    ("metrics truncated", "metrics.json", _truncate, ALL, True),
    ("metrics not an object", "metrics.json", _write('"scores"'), ALL, True),
    ("metrics videos not a list", "metrics.json", _write('{"videos": 5}'), ALL, True),
    ("metrics prefixes broken", "metrics.json", _write('{"videos": [], "prefixes": {"30s": 1}}'), ALL, True),
    ("mp4 empty", "videos/p000s0.mp4", _write(""), REPORT, False),
    ("mp4 random bytes", "videos/p000s0.mp4", _random, REPORT, False),
    ("mp4 truncated", "videos/p000s0.mp4", _truncate, REPORT, False),
    ("timeline random bytes", "timelines/p000s0.npz", _random, REPORT, False),
    ("timeline truncated", "timelines/p000s0.npz", _truncate, REPORT, False),
    ("timeline wrong arrays", "timelines/p000s0.npz",
     lambda p: np.savez(p.with_suffix(""), frames=np.zeros(3)) or p.with_suffix(".npz"), REPORT, False),
    ("clips random bytes", "clips.csv", _random, REPORT, False),
    ("clips empty", "clips.csv", _write(""), REPORT, False),
    ("clips foreign columns", "clips.csv", _write("a,b\n1,2\n"), REPORT, False),
    ("score file random bytes", "eval/toy/scores/p000s0.json", _random, NONE, False),
]
CORRUPT_CASES = [(tool, *case) for tool in TOOLS for case in CORRUPT]


def _outputs(tool: str, out: Path) -> set[str]:
    """The presets a tool's output covers (what "looks complete" means per tool)."""
    if tool == "collect":
        return set(pd.read_csv(out / "results.csv")["preset"])
    if tool == "tables":
        md = (out / "main_toy_toy.md").read_text()
        return {line.split("|")[1].strip() for line in md.splitlines()[4:] if line.startswith("| ")}
    if tool == "contrasts":
        return {"window", *pd.read_csv(out / "contrasts_toy_toy.csv")["arm"]}
    idx = (out / "data" / "index.js").read_text()
    return {v["label"] for v in json.loads(idx[idx.index("{"):idx.rindex("}") + 1])["variants"]}


@pytest.mark.parametrize("tool,name,rel,damage,readers,whole_run", CORRUPT_CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CORRUPT_CASES])
def test_corrupt_file_is_named_and_the_good_runs_still_come_out(
        tool, name, rel, damage, readers, whole_run, sweep, tmp_path, capsys):
    victim = sweep / VICTIM
    damage(victim / rel)
    before = checksums(sweep)
    code, err = call(tool, tool_args(tool, [sweep], tmp_path / "out"), capsys)
    assert code == 0, err
    assert checksums(sweep) == before
    about = [line for line in err.splitlines() if VICTIM in line]
    if tool not in readers:                     # a file this tool never reads changes nothing
        assert not about, err
        assert _outputs(tool, tmp_path / "out") == {*GOOD, "full"}
        return
    assert len(about) == 1 and Path(rel).name in about[0] and "corrupt" in about[0], err
    want = set(GOOD) if whole_run else {*GOOD, "full"}       # a run with a bad video keeps its others
    assert _outputs(tool, tmp_path / "out") == want
    if tool == "report":                        # the run is listed as corrupt with the file named
        page = (tmp_path / "out" / "index.html").read_text()
        row = next(r for r in page.split("<tr") if VICTIM in r)
        assert "st-corrupt" in row and Path(rel).name in row


# ---- the report's output folder ---------------------------------------------------------------
def test_report_never_deletes_files_it_did_not_write(sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert call("report", [sweep, "--out", out], capsys)[0] == 0
    foreign = {out / "media" / "holiday.mp4": b"not ours", out / "notes.txt": b"mine",
               out / "data" / "README": b"keep"}
    for p, data in foreign.items():
        p.write_bytes(data)
    sums = {p: hashlib.sha256(d).hexdigest() for p, d in foreign.items()}
    assert call("report", [sweep, "--out", out], capsys)[0] == 0                     # rebuild
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in foreign if p.is_file()} == sums
    ours = set(json.loads((out / MANIFEST).read_text())["files"])
    assert not {p.relative_to(out).as_posix() for p in foreign} & ours
    # a run leaves the report: its encodes (in the manifest) go, foreign files stay
    shutil.move(sweep / VICTIM, tmp_path / "elsewhere")
    assert call("report", [sweep, "--out", out], capsys)[0] == 0
    assert len(list((out / "media").glob("*.mp4"))) == 2 * len(GOOD) + 1        # + holiday.mp4
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in foreign} == sums
    assert set(json.loads((out / MANIFEST).read_text())["files"]) < ours


def test_report_refuses_a_folder_it_did_not_make_unless_forced(sweep, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    (out / "media").mkdir()
    (out / "media" / "talk.mp4").write_bytes(b"\x00" * 100)
    before = checksums(out)
    code, err = call("report", [sweep, "--out", out], capsys)
    assert code == 2 and err.count("\n") == 1 and f"--out={out}" in err and MANIFEST in err
    assert checksums(out) == before
    code, err = call("report", [sweep, "--out", out, "--force"], capsys)
    assert code == 0 and (out / "index.html").is_file()
    assert {k: v for k, v in checksums(out).items() if k in before} == before
    assert not {"thesis.tex", "media/talk.mp4"} & set(json.loads((out / MANIFEST).read_text())["files"])
    # a foreign file by one of the report's own names is never overwritten, even with --force
    other = tmp_path / "site"
    other.mkdir()
    (other / "index.html").write_text("<h1>my site</h1>")
    code, err = call("report", [sweep, "--out", other, "--force"], capsys)
    assert code == 2 and "index.html" in err and (other / "index.html").read_text() == "<h1>my site</h1>"
    assert sorted(p.name for p in other.iterdir()) == ["index.html"]


def test_tables_never_delete_files_they_did_not_write(sweep, tmp_path, capsys):
    out = tmp_path / "tables"
    out.mkdir()
    (out / "notes.md").write_text("my notes")
    before = checksums(out)
    assert call("tables", tool_args("tables", [sweep], out), capsys)[0] == 0
    assert (out / "main_toy_toy.md").is_file()
    assert {k: v for k, v in checksums(out).items() if k in before} == before
