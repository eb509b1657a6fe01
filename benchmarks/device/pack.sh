#!/usr/bin/env bash
# Prepares the GPU check (benchmarks/device/gpu_check.sh) here, before a device call: the
# lent GPU machine has Python 3.12 with torch, torch-geometric, pandas, scipy, matplotlib, but
# no Ray, gymnasium or ofa, and reaches no index; what it lacks travels as wheels in `.whl/`,
# the OFA predictor (../shared, which does not travel) in `.device/`. Both folders are
# git-ignored here (.git/info/exclude) and named in the device call's `carry`.
#
# Ray 2.60's cp312 wheel is 79 MB, over the 64 MiB a device call carries; 32 MB of it is
# ray/jars/ray_dist.jar (the Java workers, unused from Python), which this script removes
# from the wheel (~47 MB left).
#
#   bash benchmarks/device/pack.sh            # then: gpu_check.sh on the device (its header)
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in .whl .device; do
    grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
rm -rf .whl .device && mkdir -p .whl .device
pip_download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d .whl "$@"
}
# What Ray[tune,rllib] 2.60, gymnasium and ofa need that the device image lacks.
pip_download ray==2.60.0 gymnasium==1.2.2 farama-notifications ofa==0.1.0.post202307202001 \
    jsonschema jsonschema-specifications referencing rpds-py tensorboardX dm-tree lz4 \
    ormsgpack pydantic pydantic-core annotated-types typing-inspection typing-extensions
python3 - <<'PY'
import glob, os, zipfile
(src,) = glob.glob(".whl/ray-2.60.0-*.whl")
tmp = src + ".tmp"
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if not item.filename.startswith("ray/jars/"):
            zout.writestr(item, zin.read(item.filename))
os.replace(tmp, src)
PY
cp ../shared/models/ofa/acc_predictor.pth .device/
du -sh .whl .device
