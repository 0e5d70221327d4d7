"""Can the distillation discriminator tell real clips from the teacher's one-step samples? Heads only, no student.

    python bench/discriminator_check.py mnist [--lr 1e-3] [--p-mean -2.0] [--p-std 1.0] [--steps 100]

Trains the discriminator heads (lightvid/compress/distill.py) for --steps updates against a fixed fake: the
teacher's one-call sample from pure noise (σ_max) for each training clip, tasks drawn as `lightvid distill` draws
them (the trainer's default mix). Prints the hinge loss averaged over each window of 20 updates (one batch is too
noisy to read); chance is 2 per head (8 heads for a 3-level UNet: 16). A discriminator that stays near chance here
cannot steer a student that moves while it learns.

Then, with the trained heads, it prints the norm of each generator-loss term's gradient (adversarial,
reconstruction; unweighted) at the student's sample, the student being the teacher as it starts, averaged over
4 batches: the two that distillation balances (lightvid/compress/distill.py).
"""
import argparse
import time

import torch
from accelerate import Accelerator

from lightvid.compress.distill import Distillation
from lightvid.data import build_dataset
from lightvid.pipelines.native import NativePipeline
from lightvid.train.config import DEFAULT_TASKS, DistillConfig
from lightvid.train.masking import sample_given_frames
from lightvid.train.objective import given_mask
from lightvid.weights import model_folder

WINDOW = 20  # updates per printed mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teacher", help="embedded name or native model folder (pixel-space, with a 'dataset' fact)")
    parser.add_argument("--lr", type=float, default=DistillConfig.discriminator_lr)
    parser.add_argument("--p-mean", type=float, default=DistillConfig.discriminator_p_mean)
    parser.add_argument("--p-std", type=float, default=DistillConfig.discriminator_p_std)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    torch.manual_seed(0)  # the heads' initialisation
    pipe = NativePipeline.from_pretrained(model_folder(args.teacher))
    s = pipe.settings
    config = DistillConfig(teacher=args.teacher, discriminator_lr=args.lr, discriminator_p_mean=args.p_mean,
                           discriminator_p_std=args.p_std)
    distill = Distillation(config, pipe, s.sigma_min, s.sigma_max)
    accelerator = Accelerator(mixed_precision="bf16")
    distill.prepare(accelerator)
    data = build_dataset(pipe.facts["dataset"], num_frames=s.num_frames, size=s.height)
    g = torch.Generator().manual_seed(0)
    tic = time.perf_counter()
    window = []
    for step in range(args.steps):
        clips = torch.stack([data[int(i)][0] for i in torch.randint(len(data), (args.batch,), generator=g)])
        given = sample_given_frames(args.batch, s.num_frames, DEFAULT_TASKS, g)
        mask = given_mask(given, clips)
        sigma = torch.full((args.batch,), s.sigma_max)
        with torch.no_grad(), accelerator.autocast():  # (b, f, c, h, w): the teacher's one-call sample
            noisy = clips + sigma.view(-1, 1, 1, 1, 1) * torch.randn(clips.shape, generator=g)
            fake = mask * clips + (1 - mask) * pipe.denoiser(noisy, sigma, given=clips * mask, mask=mask).float()
        window.append(distill.discriminator_step(clips, given, fake, g, accelerator)["discriminator"])
        if len(window) == WINDOW or step == args.steps - 1:
            print(f"updates {step + 2 - len(window)}-{step + 1}: mean hinge loss {sum(window) / len(window):.2f} "
                  f"({time.perf_counter() - tic:.0f} s)", flush=True)
            window = []
    student = NativePipeline.from_pretrained(model_folder(args.teacher))  # its own weights: the teacher's are frozen
    g = torch.Generator().manual_seed(1)
    norms = {"adversarial_grad": [], "reconstruction_grad": []}
    for _ in range(4):
        clips = torch.stack([data[int(i)][0] for i in torch.randint(len(data), (args.batch,), generator=g)])
        given = sample_given_frames(args.batch, s.num_frames, DEFAULT_TASKS, g)
        with accelerator.autocast():
            logs = distill.generator_loss(student.denoiser, clips, given, g)[1]
        for key, values in norms.items():
            values.append(logs[key])
    print("gradient norm at the student's sample (mean of 4 batches): adversarial "
          f"{sum(norms['adversarial_grad']) / 4:.3g}, reconstruction {sum(norms['reconstruction_grad']) / 4:.3g}")


if __name__ == "__main__":
    main()
