#!/usr/bin/env bash
# earl's one entry point on a fresh machine. Idempotent: a second run only checks.
#   ./setup.sh          install what the build needs (Python venv with torch for libtorch)
#   ./setup.sh demo     …then build the demo dataset from the embedded sample and train briefly
#   ./setup.sh test     …then run the whole test suite (fmt, clippy, tests), as CI does
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

# Python packages, pinned. torch 2.13.0 is the libtorch tch 0.26 links against (LIBTORCH_USE_PYTORCH=1,
# see .cargo/config.toml); dashscope ships Qwen's BPE ranks (qwen.tiktoken) used by the Emu3 tokenizer;
# datasets/pyarrow/pillow check our outputs against the Python ecosystem.
PY_PACKAGES=(torch==2.13.0 numpy pillow==13.0.0 pyarrow==26.0.1 datasets==5.2.0 safetensors dashscope==2.0.2)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_rust() {
    command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }
}

ensure_venv() {
    local stamp=".venv/.earl-packages"
    local want; want=$(printf '%s\n' "${PY_PACKAGES[@]}")
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        return
    fi
    log "Python venv .venv with ${PY_PACKAGES[*]} (first time: a few minutes)"
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
    printf '%s\n' "$want" >"$stamp"
}

demo() {
    local out=${EARL_DEMO_OUT:-out/demo}
    log "earl-data build omniedit on datasets/samples/omniedit-mini -> $out/tokens"
    cargo run --quiet --bin earl-data -- build omniedit --out "$out" --vq tiny-random --image-area 4096
    log "earl-train: 20 SFT steps of the tiny model on those tokens -> $out/run"
    cargo run --quiet --bin earl-train -- --shards "$out/tokens" --config pipelines/sft-tiny.toml \
        --out "$out/run" --max-steps 20
    log "done: dataset in $out/tokens, checkpoints in $out/run/checkpoints, metrics in $out/run/metrics.jsonl"
}

run_tests() {
    log "cargo fmt --check"
    cargo fmt --all --check
    log "cargo clippy --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    log "cargo test"
    cargo test --workspace
}

ensure_rust
ensure_venv
# torch-sys finds libtorch through `python -c "import torch"`: the venv's python must come first.
# Any value of LIBTORCH_USE_PYTORCH turns that on; naming the venv in it makes cargo rebuild
# torch-sys (and so the rpath) when the checkout, and with it the venv, moves.
export VIRTUAL_ENV="$ROOT/.venv" PATH="$ROOT/.venv/bin:$PATH" LIBTORCH_USE_PYTORCH="$ROOT/.venv"
case "${1:-}" in
    "") log "ready: ./setup.sh demo runs the demo, ./setup.sh test the tests" ;;
    demo) demo ;;
    test) run_tests ;;
    *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac
