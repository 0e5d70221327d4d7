"""Can the distillation discriminator tell real clips from the teacher's one-step samples? Heads only, no student.

    python bench/discriminator_check.py mnist [--lr 1e-3] [--p-mean -2.0] [--p-std 1.0] [--steps 100]

Trains the discriminator heads (lightvid/compress/distill.py) for --steps updates against a fixed fake: the
teacher's one-call sample from pure noise (σ_max) for each training clip, tasks drawn as in training. Prints the
hinge loss every 20 updates; chance is 2 per head (8 heads for a 3-level UNet: 16). A discriminator that stays
near chance here cannot steer a student that moves while it learns.

Then, with the trained heads, it prints the gradient norm that each term of the generator loss (adversarial,
reconstruction; unweighted) puts on the student's weights at its start (the teacher), averaged over 4 batches:
what `adversarial_weight` and `reconstruction_weight` trade off.
"""
import argparse
import time
from dataclasses import replace

import torch
from accelerate import Accelerator

from lightvid.compress.distill import Distillation
from lightvid.data import build_dataset
from lightvid.pipelines.native import NativePipeline
from lightvid.train.config import DistillConfig
from lightvid.train.masking import sample_given_frames
from lightvid.train.objective import given_mask
from lightvid.weights import model_folder

TASKS = {"image_to_video": 0.2, "interpolate": 0.2, "extend": 0.3, "random": 0.2, "unconditional": 0.1}


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
    distill = Distillation(config, pipe.unet, s.patch, s.sigma_data, s.sigma_min, s.sigma_max)
    accelerator = Accelerator(mixed_precision="bf16")
    distill.prepare(accelerator)
    data = build_dataset(pipe.facts["dataset"], num_frames=s.num_frames, size=s.height)
    g = torch.Generator().manual_seed(0)
    tic = time.perf_counter()
    for step in range(args.steps):
        clips = torch.stack([data[int(i)][0] for i in torch.randint(len(data), (args.batch,), generator=g)])
        given = sample_given_frames(args.batch, s.num_frames, TASKS, g)
        mask = given_mask(given, clips)
        sigma = torch.full((args.batch,), s.sigma_max)
        with torch.no_grad(), accelerator.autocast():  # (b, f, c, h, w): the teacher's one-call sample
            noisy = clips + sigma.view(-1, 1, 1, 1, 1) * torch.randn(clips.shape, generator=g)
            fake = mask * clips + (1 - mask) * pipe.denoiser(noisy, sigma, given=clips * mask, mask=mask).float()
        loss = distill.discriminator_step(clips, given, fake, g, accelerator)["discriminator"]
        if step % 20 == 0 or step == args.steps - 1:
            print(f"update {step + 1}: hinge loss {loss:.2f} ({time.perf_counter() - tic:.0f} s)", flush=True)
    student = NativePipeline.from_pretrained(model_folder(args.teacher))  # its own weights: the teacher's are frozen
    adversarial, reconstruction = (_student_grad_norm(distill, student, data, weights, args.batch, accelerator)
                                   for weights in ((1.0, 0.0), (0.0, 1.0)))
    print(f"student gradient norm (unweighted): adversarial {adversarial:.3g}, reconstruction {reconstruction:.3g}")


def _student_grad_norm(distill: Distillation, student: NativePipeline, data, weights: tuple[float, float],
                       batch: int, accelerator, batches: int = 4) -> float:
    """Mean over `batches` of the student-weight gradient norm of one weighting of the generator loss."""
    s, cfg = student.settings, distill.cfg
    distill.cfg = replace(cfg, adversarial_weight=weights[0], reconstruction_weight=weights[1])
    g = torch.Generator().manual_seed(1)  # the same batches, tasks and noise for both weightings
    norms = []
    for _ in range(batches):
        clips = torch.stack([data[int(i)][0] for i in torch.randint(len(data), (batch,), generator=g)])
        given = sample_given_frames(batch, s.num_frames, TASKS, g)
        student.unet.zero_grad(set_to_none=True)
        with accelerator.autocast():
            loss = distill.generator_loss(student.denoiser, clips, given, g)[0]
        loss.backward()
        norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in student.unet.parameters()
                                                           if p.grad is not None])).item())
    distill.cfg = cfg
    return sum(norms) / len(norms)


if __name__ == "__main__":
    main()
