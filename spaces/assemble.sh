#!/usr/bin/env bash
# Assemble a Hugging Face Space (Gradio SDK) from this repository into OUT, ready to push:
#   app.py, kwslib/, README.md (spaces/README.md: the Space card and its YAML configuration),
#   requirements.txt (spaces/requirements.txt), the model, its metrics.json and HTML report, and example clips.
#
#   spaces/assemble.sh OUT [RUN]        RUN defaults to runs/demo (made by `make demo`)
#   cd OUT && git init && git remote add space https://huggingface.co/spaces/<user>/<name> && git add . && ...
#   (or: huggingface-cli upload <user>/<name> OUT . --repo-type space)
#
# The Space runs `python app.py` from OUT. The model is copied to runs/demo/ (the app's default), an exported
# model.onnx beside it when there is one; the app lists both. Nothing here needs the network.
set -euo pipefail

out=${1:?usage: spaces/assemble.sh OUT [RUN]}
run=${2:-runs/demo}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

[ -f "$run/model/config.json" ] || [ -f "$run/model.onnx" ] || {
  echo "assemble: $run has neither model/ nor model.onnx; run \`make demo\` (and \`kws export\`) first" >&2
  exit 2
}
[ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ] && {
  echo "assemble: $out exists and is not empty; give a new folder" >&2
  exit 2
}
mkdir -p "$out/runs/demo" "$out/reports/demo" "$out/examples"

cp app.py "$out/"
cp spaces/README.md "$out/README.md"
cp spaces/requirements.txt "$out/requirements.txt"
cp -r kwslib "$out/"
find "$out/kwslib" -name '__pycache__' -prune -exec rm -rf {} +

if [ -f "$run/model/config.json" ]; then cp -r "$run/model" "$out/runs/demo/"; fi
if [ -f "$run/model.onnx" ]; then cp "$run/model.onnx" "$out/runs/demo/"; fi
if [ -f "$run/metrics.json" ]; then cp "$run/metrics.json" "$out/runs/demo/"; fi
name=$(basename "$run")
for report in "$run/report.html" "reports/$name/report.html"; do
  if [ -f "$report" ]; then cp "$report" "$out/reports/demo/report.html"; break; fi
done

# One held-out clip per keyword as the upload examples (named <word>.wav, so the app labels them by word).
data=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('data', ''))" "$run/metrics.json" 2>/dev/null || true)
if [ -n "$data" ] && [ -f "$data/testing_list.txt" ]; then
  for word in yes no up down left right on off stop go; do
    clip=$(grep -m1 "^$word/" "$data/testing_list.txt" || true)
    if [ -n "$clip" ]; then cp "$data/$clip" "$out/examples/$word.wav"; fi
  done
fi

echo "assembled $out:"
(cd "$out" && find . -maxdepth 3 -not -path './kwslib/*' | sort | sed 's/^/  /')
echo "size: $(du -sh "$out" | cut -f1)"
