"""The report's output folder, owned file by file: a manifest (.report-manifest.json) lists every
file the report wrote there. A rebuild reuses and prunes only files in the manifest; a non-empty
folder without one is refused (`--force` writes beside its files); a file the report did not
write is never deleted or overwritten."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tethercache.rundir import write_json

from ..cli import BadArgument

MANIFEST = ".report-manifest.json"
TOOL = "analysis.report"
# the names the report writes: a foreign file by one of these names is never overwritten, even
# with --force (any other foreign file, in media/ too, is simply left alone)
OWN_NAMES = re.compile(r"(index\.html|report\.js|report\.css|data/[^/]+\.js"
                       r"|media/[0-9a-f]{16}(\.tmp)?\.(mp4|jpg|json))")


def _previous(root: Path) -> set[str] | None:
    """The files the manifest lists, or None when there is no (readable) manifest."""
    try:
        m = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    files = m.get("files") if isinstance(m, dict) and m.get("tool") == TOOL else None
    # only the report's own names: a hand-edited manifest cannot make it delete anything else
    return {f for f in files if isinstance(f, str) and OWN_NAMES.fullmatch(f)} \
        if isinstance(files, list) else None


def _foreign(root: Path, owned: set[str]) -> list[str]:
    """Files by the report's own names that the manifest does not list."""
    rels = (p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())
    return sorted(r for r in rels if OWN_NAMES.fullmatch(r) and r not in owned)


def check(flag: str, root: Path, force: bool) -> None:
    """Before any work: may the report write into `root`?"""
    root = Path(root)
    if not root.is_dir() or not any(root.iterdir()):
        return
    owned = _previous(root)
    if owned is None and not force:
        raise BadArgument(f"{flag}={root}: not empty and not a report folder (no {MANIFEST}); "
                          "choose an empty or new folder, or --force to write beside its files")
    clash = _foreign(root, owned or set())
    if clash:
        raise BadArgument(f"{flag}={root}: {clash[0]} was not written by the report and is never "
                          "overwritten; move it or choose another folder")


class OwnedDir:
    """Files written into `root`, recorded in its manifest as they are claimed (a crash leaves
    them owned, so the next build prunes them)."""

    def __init__(self, root: Path, previous: set[str], track: bool = True):
        self.root, self.previous, self.track = Path(root), set(previous), track
        self.kept: set[str] = set()
        self.scratch: set[str] = set()

    @classmethod
    def open(cls, root: Path) -> "OwnedDir":
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        out = cls(root, _previous(root) or set())
        out._flush()
        return out

    @classmethod
    def untracked(cls, root: Path) -> "OwnedDir":
        """A plain folder: no manifest, everything in it counts as owned."""
        return cls(root, set(), track=False)

    def owns(self, rel: str) -> bool:
        return not self.track or rel in self.previous | self.kept | self.scratch

    def path(self, rel: str) -> Path:
        """Claim `rel` as a file of this build and return where to write it."""
        self.keep(rel)
        return self.root / rel

    def keep(self, *rels: str) -> None:
        """Files of this build (written now or reused)."""
        self._claim(rels, self.kept)

    def scratch_files(self, *rels: str) -> None:
        """Temporary files: owned until the build finishes, then pruned if still there."""
        self._claim(rels, self.scratch)

    def _claim(self, rels, into: set[str]) -> None:
        for rel in rels:
            p = self.root / rel
            if self.track and p.exists() and not self.owns(rel):
                raise FileExistsError(f"{p}: not written by the report; not overwritten")
            p.parent.mkdir(parents=True, exist_ok=True)
        new = set(rels) - into
        into |= set(rels)
        if new and self.track:
            self._flush()

    def finish(self) -> list[str]:
        """Delete the files of earlier builds (and scratch) this build did not keep; returns them."""
        stale = sorted((self.previous | self.scratch) - self.kept) if self.track else []
        for rel in stale:
            (self.root / rel).unlink(missing_ok=True)
        self.previous, self.scratch = set(self.kept), set()
        if self.track:
            self._flush()
        return stale

    def _flush(self) -> None:
        files = sorted(self.previous | self.kept | self.scratch)
        write_json(self.root / MANIFEST, {"tool": TOOL, "files": files})
