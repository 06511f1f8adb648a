import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def one_thread():
    """PyTorch on one thread for the test (tiny tensors: fastest, and immune to oversubscribed
    cores), then the caller's count again. Modules use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_data() -> Path:
    """The folder of real data sets beside the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data (real QM9 and n2p2 data) is not present beside the repository")
    return SHARED_DATA.resolve()


@pytest.fixture(scope="session")
def n2p2_examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``n2p2_examples/`` unpacked from ../shared/data (GPL-3.0: used in place, never bundled)."""
    archive = SHARED_DATA / "n2p2_examples.tar.xz"
    if not archive.is_file():
        pytest.skip("../shared/data/n2p2_examples.tar.xz (n2p2's example potentials) is not present")
    import tarfile

    target = tmp_path_factory.mktemp("n2p2")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "n2p2_examples"


@pytest.fixture(scope="session")
def n2p2_reference() -> dict:
    """n2p2's own energies and forces for its nnp-predict examples."""
    path = SHARED_DATA / "n2p2_reference_predictions.json"
    if not path.is_file():
        pytest.skip("../shared/data/n2p2_reference_predictions.json is not present")
    import json

    return json.loads(path.read_text())
