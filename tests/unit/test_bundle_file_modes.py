"""A bundle's files, weights included, are readable by others: a container serves it as a user that owns none."""

from __future__ import annotations

import os
import stat

from modelyard.export.container import containerize
from modelyard.fsutil import atomic_path


def test_a_file_written_through_atomic_path_gets_the_usual_permissions(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    target = tmp_path / "model.safetensors"
    with atomic_path(target) as tmp:
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(tmp))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_new_bundles_weights_are_readable_by_others(tfidf_bundle):
    assert (tfidf_bundle / "model.safetensors").stat().st_mode & stat.S_IROTH


def test_containerize_makes_a_bundle_with_private_weights_readable_in_its_build_context(tfidf_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(tfidf_bundle, bundle)
    os.chmod(bundle / "model.safetensors", 0o600)  # as an older modelyard wrote it
    wheel = tmp_path / "modelyard-0-py3-none-any.whl"
    wheel.write_bytes(b"")
    containerize(bundle, tmp_path / "ctx", wheel=wheel)
    for folder, _, files in os.walk(tmp_path / "ctx" / "bundle"):
        assert os.stat(folder).st_mode & 0o005 == 0o005, folder
        for name in files:
            assert os.stat(os.path.join(folder, name)).st_mode & stat.S_IROTH, name
