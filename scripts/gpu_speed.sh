#!/usr/bin/env bash
# The GPU speed benchmark (docs/speed.md#on-a-gpu): `selfsup speed` in bf16 for ResNet-18 at 32 px and
# ResNet-50 at 224 px (ImageNet stem; Fashion-MNIST resized, so no download), then the data path alone.
#   scripts/gpu_speed.sh OUT_DIR [key=value ...]   extra overrides go to every run (e.g. data.root=DIR)
# Writes OUT_DIR/{r18_32_b256,r18_32_b1024,r50_224,r50_224_swav,compiled,compiled_r50}.json and prints the reports.
set -euo pipefail
out=${1:?usage: scripts/gpu_speed.sh OUT_DIR [key=value ...]}; shift
mkdir -p "$out"
steps=${STEPS:-20}; warmup=${WARMUP:-5}
base=(train.device="${DEVICE:-cuda}" "$@")
r18=(data.resolution=32 train.batch_size=256)
# 10k images are enough to time steps and keep the resize to 224 px short; batch 128 keeps RotNet's 4 x 128 views in memory
r50=(backbone.name=resnet50_v1 backbone.stem=imagenet data.resolution=224 data.subset="${R50_SUBSET:-10000}" train.batch_size="${R50_BATCH:-128}")
methods=(simclr moco swav byol rotation jigsaw)

# batch 256 as on the CPU, and 1024: at 32 px a batch of 256 leaves the GPU waiting on kernel launches
for b in ${R18_BATCHES:-256 1024}; do
  selfsup speed "${methods[@]}" "${base[@]}" "${r18[@]}" train.batch_size="$b" --precision bf16 --steps "$steps" --warmup "$warmup" --markdown --json "$out/r18_32_b$b.json"
done
# SwAV's small crops at the paper's 96 px need their own override, so it runs apart at 224 px
selfsup speed simclr moco byol rotation jigsaw "${base[@]}" "${r50[@]}" --precision bf16 --steps "$steps" --warmup "$warmup" --markdown --json "$out/r50_224.json"
selfsup speed swav "${base[@]}" "${r50[@]}" method.small_size=96 --precision bf16 --steps "$steps" --warmup "$warmup" --markdown --json "$out/r50_224_swav.json"
selfsup speed simclr "${base[@]}" "${r18[@]}" --data-only --steps 200
selfsup speed simclr "${base[@]}" "${r50[@]}" --data-only --steps 50
if [ -z "${NO_COMPILE:-}" ]; then  # torch.compile's gain on the GPU, SimCLR at both sizes
  selfsup speed simclr "${base[@]}" "${r18[@]}" --precision bf16 --compile --steps "$steps" --warmup "$warmup" --markdown --json "$out/compiled.json"
  selfsup speed simclr "${base[@]}" "${r50[@]}" --precision bf16 --compile --steps "$steps" --warmup "$warmup" --markdown --json "$out/compiled_r50.json"
fi
