"""Times transformers' LlamaForCausalLM training steps at the sizes of benches/train.rs, so the
ratio to earl-train's tokens/s can be reported (same forward/backward/clip/AdamW work).

    .venv/bin/pip install transformers
    .venv/bin/python crates/earl-train/benches/torch_llama.py [--device cpu|cuda] [--steps 3]
"""

import argparse
import resource
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SIZES = [
    ("tiny (h64 l2, vocab 184622)", dict(vocab_size=184622, hidden_size=64, intermediate_size=176,
                                          num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=2), 2, 512),
    ("small (h512 l8, vocab 32768)", dict(vocab_size=32768, hidden_size=512, intermediate_size=1408,
                                           num_hidden_layers=8, num_attention_heads=8,
                                           num_key_value_heads=4), 2, 1024),
]


def bench(model_kwargs, batch, seq_len, steps, device):
    config = LlamaConfig(rope_theta=1e6, rms_norm_eps=1e-5, attention_dropout=0.0,
                         max_position_embeddings=9216, **model_kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=1e-4, betas=(0.9, 0.95), eps=1e-6, foreach=False)
    ids = torch.randint(0, config.vocab_size, (batch, seq_len), device=device)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()
        optim.zero_grad()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    params = sum(p.numel() for p in model.parameters())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return params, batch * seq_len / seconds, seconds, peak_mib


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print("| model | params | batch x seq | tokens/s | s/step | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, kwargs, batch, seq_len in SIZES:
        params, tps, sps, peak = bench(kwargs, batch, seq_len, args.steps, args.device)
        print(f"| {name} | {params} | {batch} x {seq_len} | {tps:.0f} | {sps:.3f} | {peak} |")


if __name__ == "__main__":
    main()
