#!/usr/bin/env bash
# Build the bundled `starter` weights from nothing, as released (docs/starter-model-card.md).
#
#   bash scripts/build_starter.sh [WORK_DIR]      # default WORK_DIR: ./starter-build
#
# Every step is an `instcolor` command or a script of this repository; photos come from Debian and
# PyPI packages (scripts/starter_data.py). About an hour on 2 CPU cores; on a GPU add
# `--device cuda` (bf16 works on both). The last step overwrites src/instcolor/assets/starter.safetensors.
set -euo pipefail

WORK=${1:-starter-build}
DATA=$WORK/data
RUNS=$WORK/runs
COMMON=(--size 128 --precision bf16)
mkdir -p "$WORK"

# Photos (licences in $DATA/LICENSES.md; ShareAlike and GPL left out) and detector boxes.
python scripts/starter_data.py --out "$DATA" --exclude-licence 'SA|GPL'
instcolor detect "$DATA" -o "$DATA/boxes.json" --detector centernet

# Release 1: the paper's three stages from scratch, width 0.25.
instcolor train --stage full --data "$DATA/train" --width 0.25 --batch-size 8 --epochs 12 --decay-epochs 6 \
    "${COMMON[@]}" --out "$RUNS/r1-full"
instcolor train --stage instance --data "$DATA/train" --boxes "$DATA/boxes.json" --init "$RUNS/r1-full" \
    --batch-size 8 --epochs 4 --decay-epochs 2 "${COMMON[@]}" --out "$RUNS/r1-instance"
instcolor train --stage fusion --data "$DATA/train" --boxes "$DATA/boxes.json" --init "$RUNS/r1-instance" \
    --epochs 2 --decay-epochs 1 --fusion-rule reference --fusion-init keep "${COMMON[@]}" --out "$RUNS/r1-fusion"

# Release 2: the fusion stage again under the confined rule, generators started on the background.
instcolor train --stage fusion --data "$DATA/train" --boxes "$DATA/boxes.json" --init "$RUNS/r1-fusion" \
    --epochs 4 --decay-epochs 2 --fusion-rule confined --fusion-init background "${COMMON[@]}" \
    --out "$RUNS/r2-fusion"

python scripts/package_starter.py "$RUNS/r2-fusion" "$DATA"
