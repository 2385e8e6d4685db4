"""A folder swap killed (SIGKILL) at any step leaves, after the next start's recovery, the old folder or the new one,
whole, at the target path, and no `.old-*` folder behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelyard import fsutil

# The child counts every call that changes the file system and kills itself with SIGKILL just before call number
# KILL_AT; it exits 0 when the swap finished first. The swap under test is the real one, in a real process.
CHILD = textwrap.dedent(
    """
    import os, shutil, signal, sys

    kill_at, calls = int(sys.argv[1]), [0]

    def killing(function):
        def wrapper(*args, **kwargs):
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            calls[0] += 1
            return function(*args, **kwargs)
        return wrapper

    for name in ("replace", "rename", "unlink", "rmdir", "remove"):
        setattr(os, name, killing(getattr(os, name)))
    shutil.rmtree = killing(shutil.rmtree)
    exec(sys.argv[2])
    """
)


def _kill_at_every_step(script: str, prepare, check) -> int:
    """Run `script` killed before its 0th, 1st, ... file-system change until it completes; `check` each result."""
    for kill_at in range(200):
        prepare()
        done = subprocess.run([sys.executable, "-c", CHILD, str(kill_at), script], capture_output=True, timeout=120)
        assert done.returncode in (0, -signal.SIGKILL), done.stderr.decode()
        check()
        if done.returncode == 0:
            return kill_at
    raise AssertionError("the swap never completed")


def _swap(staging: Path, target: Path) -> str:
    """The child's program: the real swap of `staging` into `target`."""
    return f"from modelyard import fsutil\nfsutil.replace_dir({str(staging)!r}, {str(target)!r})"


def _folder(path: Path, version: str) -> None:
    path.mkdir(parents=True)
    (path / "a.txt").write_text(version)
    (path / "sub").mkdir()
    (path / "sub" / "b.txt").write_text(version)


def test_replace_dir_killed_at_any_step_recovers_a_whole_folder(tmp_path):
    parent = tmp_path / "p"
    target, staging = parent / "bundle", parent / ".bundle.partial-1"
    seen = set()

    def prepare():
        import shutil

        shutil.rmtree(parent, ignore_errors=True)
        _folder(target, "old")
        _folder(staging, "new")

    def check():
        fsutil.recover_dir(target)
        version = (target / "a.txt").read_text()
        assert (target / "sub" / "b.txt").read_text() == version  # whole: never half old, half new
        seen.add(version)
        left = sorted(p.name for p in parent.iterdir())
        assert left in (["bundle"], [".bundle.partial-1", "bundle"]), left  # no .old-*, no journal
        if ".bundle.partial-1" in left:  # a swap that never began leaves its untouched staging to its writer
            assert version == "old" and (staging / "a.txt").read_text() == "new"

    steps = _kill_at_every_step(_swap(staging, target), prepare, check)
    assert steps >= 4 and seen == {"old", "new"}


def test_a_first_swap_killed_at_any_step_never_loses_the_new_folder_once_begun(tmp_path):
    target, staging = tmp_path / "latest", tmp_path / ".staging-3"

    def prepare():
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        _folder(staging, "new")

    def check():
        fsutil.recover_dir(target)
        assert target.exists() or (staging / "sub" / "b.txt").read_text() == "new"
        if target.exists():
            assert (target / "sub" / "b.txt").read_text() == "new"
        assert [p.name for p in tmp_path.iterdir() if ".old-" in p.name or "swap" in p.name] == []

    _kill_at_every_step(_swap(staging, target), prepare, check)


KILL_ON_RENAME = textwrap.dedent(
    """
    import os, signal, sys

    source, real = sys.argv[1], os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(src).startswith(source):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)

    os.replace = replace
    exec(sys.argv[2])
    """
)


@pytest.mark.parametrize("source", ["latest", ".latest.partial-"])  # before the old one moves aside; between renames
def test_a_checkpoint_swap_killed_midway_still_resumes_from_a_saved_step(tmp_path, source):
    """The bug this guards: a kill between the two renames left no `latest`, so --resume started from step 0."""
    import torch

    from modelyard.training.checkpoint import load_checkpoint, save_checkpoint

    def parts():
        model = torch.nn.Linear(2, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    save_checkpoint(tmp_path, *parts(), {"global_step": 10, "history": []}, None)
    script = textwrap.dedent(
        f"""
        import torch
        from pathlib import Path
        from modelyard.training.checkpoint import save_checkpoint
        model = torch.nn.Linear(2, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        progress = {{"global_step": 20, "history": []}}
        save_checkpoint(Path({str(tmp_path)!r}), model, optimizer, scheduler, progress, None)
        """
    )
    done = subprocess.run([sys.executable, "-c", KILL_ON_RENAME, source, script], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    restored = load_checkpoint(tmp_path, *parts())
    assert restored is not None, "no checkpoint after the kill: --resume would start from step 0"
    assert restored[0]["global_step"] == 20  # the new checkpoint was complete before the swap began
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".staging")] == ["latest"]


def test_loading_a_bundle_whose_swap_was_killed_midway_finds_the_new_bundle(tmp_path):
    from modelyard import bundle

    def write_old(folder: Path) -> None:
        (folder / "weights.txt").write_text("old")

    bundle.write_bundle(tmp_path / "model", write_old, {"name": "m", "task": "t"})
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from modelyard import bundle

        def write_new(folder):
            (folder / "weights.txt").write_text("new")

        bundle.write_bundle(Path({str(tmp_path / "model")!r}), write_new, {{"name": "m", "task": "t"}})
        """
    )
    done = subprocess.run([sys.executable, "-c", KILL_ON_RENAME, ".model.partial-", script], capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert not (tmp_path / "model").exists()  # killed between the two renames
    bundle.verify(tmp_path / "model")  # finishes the swap first; then every checksum matches
    assert (tmp_path / "model" / "weights.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
