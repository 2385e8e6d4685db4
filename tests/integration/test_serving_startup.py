"""`modelyard serve` must be ready in seconds: the serve path imports only what answering needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SLOW_TO_IMPORT = ["transformers", "sklearn", "pandas", "captum", "scipy", "matplotlib", "timm", "mlflow"]

READY = """
import asyncio, json, sys
from modelyard.bundle import hash_early
from modelyard.serving.app import create_app
from modelyard.serving.settings import ServeSettings

hash_early(sys.argv[1])
app = create_app(sys.argv[1], ServeSettings(drift_interval_s=0, log_predictions=False))

async def ready():
    async with app.router.lifespan_context(app):
        prediction = await app.state.service.predict(["I lost my card"], 1)
        print(json.dumps({"label": prediction[0][0]["label"], "modules": sorted(sys.modules)}))

asyncio.run(ready())
"""


@pytest.mark.slow
def test_a_minilm_server_is_ready_without_importing_training_libraries(minilm_bundle):
    done = subprocess.run(
        [sys.executable, "-c", READY, str(minilm_bundle)], capture_output=True, text=True, check=True, timeout=300
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    labels = json.loads((minilm_bundle / "modelyard.json").read_text())["labels"]
    assert answer["label"] in labels
    loaded = {name.split(".")[0] for name in answer["modules"]}
    assert loaded.isdisjoint(SLOW_TO_IMPORT), loaded & set(SLOW_TO_IMPORT)


COLLECTOR = """
import asyncio, gc, json, sys
from modelyard.serving.app import create_app
from modelyard.serving.settings import ServeSettings

gc.disable()  # as `modelyard serve` does before its imports
app = create_app(sys.argv[1], ServeSettings(drift_interval_s=0, log_predictions=False))

async def ready():
    async with app.router.lifespan_context(app):
        print(json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))

asyncio.run(ready())
"""


def test_a_ready_server_collects_garbage_again_with_its_startup_objects_frozen(tfidf_bundle):
    done = subprocess.run(
        [sys.executable, "-c", COLLECTOR, str(tfidf_bundle)], capture_output=True, text=True, check=True, timeout=300
    )
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["enabled"]
    assert state["frozen"] > 10_000
