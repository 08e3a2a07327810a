"""Start-up: a run imports only what it uses (the model builders on first use, scikit-learn only where a split is
computed) and the data split is cached with the same parts it computes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from src.paths import PROJECT_ROOT
from src.training.data.base import stratified_split


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def test_models_load_their_builder_on_first_use() -> None:
    modules = loaded_after("from src.models import lenet5\nlenet5()")
    assert "src.models.lenet" in modules
    assert not {"src.models.resnet", "src.models.vgg", "torchvision"} & modules
    assert "src.models.resnet" in loaded_after("import src.models\nsrc.models.resnet152")


def test_a_cached_split_gives_the_same_parts_and_skips_scikit_learn(tmp_path: Path) -> None:
    labels = np.repeat(np.arange(10), 50)
    fresh = stratified_split(labels, (0.1, 0.2), seed=3)
    first = stratified_split(labels, (0.1, 0.2), seed=3, cache_dir=tmp_path)
    assert len(list((tmp_path / "splits").glob("*.npz"))) == 1
    again = stratified_split(labels, (0.1, 0.2), seed=3, cache_dir=tmp_path)
    for a, b, c in zip(fresh, first, again, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    other_seed = stratified_split(labels, (0.1, 0.2), seed=4, cache_dir=tmp_path)
    assert not np.array_equal(other_seed[1], fresh[1]) and len(list((tmp_path / "splits").glob("*.npz"))) == 2
    code = (f"import numpy as np\nfrom src.training.data.base import stratified_split\n"
            f"stratified_split(np.repeat(np.arange(10), 50), (0.1, 0.2), 3, cache_dir=__import__('pathlib')"
            f".Path({str(tmp_path)!r}))")
    assert "sklearn" not in loaded_after(code)
