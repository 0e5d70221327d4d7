"""lightvid's SpaceTimeUNet vs diffusers' UNetSpatioTemporalConditionModel on the same weights.

Both models run in one process, alternating call by call, so machine noise hits both alike; times are
medians. Prints a markdown table: milliseconds per UNet evaluation, the speed ratio, the max abs difference
between the two outputs (same dtype) and against the float32 reference, and achieved GFLOP/s (FLOPs counted
on the meta device for each model's own graph; a multiply-add = 2 FLOPs).

    .venv/bin/python bench/unet_speed.py                      # both configs, fp32 and bf16
    .venv/bin/python bench/unet_speed.py --configs small --reps 9 --compile
"""
import argparse
import copy
import statistics
import sys
import time

import torch
from diffusers import UNetSpatioTemporalConditionModel
from torch.utils.flop_counter import FlopCounterMode

from lightvid.compress import fold_cross_attention
from lightvid.models import SpaceTimeUNet, config_from_diffusers, diffusers_to_lightvid_key

CONFIGS = {
    # name: (diffusers config, frames, latent height, latent width)
    "small": (dict(block_out_channels=(64, 128, 256, 256), num_attention_heads=(1, 2, 4, 4)), 14, 32, 32),
    "large": (dict(block_out_channels=(320, 640, 1280, 1280), num_attention_heads=(5, 10, 20, 20)), 14, 16, 24),
}


def build(name: str):
    """A diffusers model with its own seeded default init (outputs of order 1), and ours sharing its tensors."""
    torch.manual_seed(0)
    reference = UNetSpatioTemporalConditionModel(**CONFIGS[name][0], cross_attention_dim=1024).eval()
    with torch.device("meta"):
        ours = SpaceTimeUNet(config_from_diffusers(dict(reference.config)))
    ours.load_state_dict({diffusers_to_lightvid_key(k): v for k, v in reference.state_dict().items()}, assign=True)
    return reference, fold_cross_attention(ours.eval())


def inputs(name: str, dtype):
    _, frames, h, w = CONFIGS[name]
    g = torch.Generator().manual_seed(1)
    return (torch.randn(1, frames, 8, h, w, generator=g).to(dtype), torch.tensor([0.5]),
            torch.randn(1, 1, 1024, generator=g).to(dtype), torch.tensor([[6.0, 127.0, 0.02]]))


def count_flops(model, args) -> int:
    model = copy.deepcopy(model).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*[a.to("meta") for a in args])
    return counter.get_total_flops()


def time_pair(reference, ours, args, reps: int):
    """Alternate the two models `reps` times after one warm-up each; return medians and last outputs."""
    with torch.no_grad():
        reference(*args), ours(*args)
        t_ref, t_ours = [], []
        for _ in range(reps):
            start = time.perf_counter()
            out_ref = reference(*args).sample
            t_ref.append(time.perf_counter() - start)
            start = time.perf_counter()
            out_ours = ours(*args)
            t_ours.append(time.perf_counter() - start)
    return statistics.median(t_ref), statistics.median(t_ours), out_ref.float(), out_ours.float()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="small,large", help="comma list of: " + ", ".join(CONFIGS))
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma list of: float32, bfloat16")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per model (after one warm-up)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(ours) (slow to compile)")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| config | frames x latent | dtype | variant | diffusers ms | lightvid ms | speed-up | max abs diff "
          "vs diffusers | max abs diff vs fp32 ref | max abs output | diffusers GFLOP/s | lightvid GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        _, frames, h, w = CONFIGS[name]
        print(f"building {name} ...", file=sys.stderr)
        reference, ours = build(name)
        flops_ref = count_flops(reference, inputs(name, torch.float32))
        flops_ours = count_flops(ours, inputs(name, torch.float32))
        exact = None
        for dtype_name in args.dtypes.split(","):
            dtype = getattr(torch, dtype_name)
            reference, ours = reference.to(dtype), ours.to(dtype)
            variants = [("eager", ours)] + ([("compiled", torch.compile(ours))] if args.compile else [])
            for variant, model in variants:
                print(f"timing {name} {dtype_name} {variant} ...", file=sys.stderr)
                t_ref, t_ours, out_ref, out_ours = time_pair(reference, model, inputs(name, dtype), args.reps)
                if exact is None:
                    exact = out_ref
                cells = [name, f"{frames}x{h}x{w}", dtype_name, variant, f"{t_ref * 1e3:.0f}", f"{t_ours * 1e3:.0f}",
                         f"{t_ref / t_ours:.2f}x", f"{(out_ours - out_ref).abs().max():.1e}",
                         f"{(out_ours - exact).abs().max():.1e}", f"{exact.abs().max():.2f}",
                         f"{flops_ref / t_ref / 1e9:.0f}", f"{flops_ours / t_ours / 1e9:.0f}"]
                print("| " + " | ".join(cells) + " |", flush=True)
    print("\nFLOPs per evaluation are each model's own: diffusers computes the single-token cross-attention in "
          "full, lightvid folds it (exact).")


if __name__ == "__main__":
    main()
