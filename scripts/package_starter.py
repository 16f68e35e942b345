"""Package a trained run as the bundled ``starter`` weights.

    python scripts/package_starter.py runs/starter-fusion data/starter

Writes ``src/instcolor/assets/starter.safetensors`` (our weights format, with provenance metadata)
and copies the training data's manifest and licence summary beside it, so every training image's
source package and licence ships with the weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from safetensors import safe_open

from instcolor.models.config import ModelConfig
from instcolor.models.weights.store import read_metadata, save_state

ASSETS = Path(__file__).resolve().parents[1] / "src" / "instcolor" / "assets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder of the final (fusion) stage")
    parser.add_argument("data", type=Path, help="the dataset folder written by scripts/starter_data.py")
    args = parser.parse_args()

    weights = args.run / "weights.safetensors"
    meta = read_metadata(weights)
    with safe_open(str(weights), framework="pt") as f:
        state = {key: f.get_tensor(key) for key in f.keys()}
    manifest = args.data / "manifest.csv"
    training = json.loads(meta.get("training_config", "{}"))
    metadata = {
        "name": "starter",
        "source": "trained by the instcolor developers with `instcolor train` (three stages) on photos "
        "bundled by Debian and PyPI packages; see starter-data/manifest.csv",
        "licence": "MIT (weights); training photos: public domain, CC0 and CC-BY (attribution in "
        "starter-data/LICENSES.md)",
        "training_data_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "training_runs": str(args.run.name),
        "training_config": json.dumps(training, sort_keys=True),
    }
    ASSETS.mkdir(parents=True, exist_ok=True)
    save_state(ASSETS / "starter.safetensors", state, ModelConfig(**json.loads(meta["config"])), metadata)
    (ASSETS / "starter-data").mkdir(exist_ok=True)
    for name in ("manifest.csv", "LICENSES.md"):
        shutil.copyfile(args.data / name, ASSETS / "starter-data" / name)
    size = (ASSETS / "starter.safetensors").stat().st_size
    print(f"wrote {ASSETS / 'starter.safetensors'} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
