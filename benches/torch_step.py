"""PyTorch eager's training step for the convolutional workloads of `examples/bench.rs`, on the
same machine, printing the same JSON lines (`step_us`: the median step, in microseconds).

    pip install torch
    python3 benches/torch_step.py                  # cnn and dcgan-d, batches 64 and 128, 1 and 2 threads
    python3 benches/torch_step.py --workloads gan --batches 128   # one DCGAN iteration
    python3 benches/torch_step.py --threads 2 --batches 64 --workloads cnn

The networks are the bench's (`examples/common/mod.rs`): `cnn`, LeNet with batch normalisation
and softmax cross-entropy; `dcgan-d`, the DCGAN discriminator with binary cross-entropy on
logits. Each is trained with Adam (lr 1e-3 and 2e-4 as in the bench), float32, on a fixed batch
(`zero_grad`, forward, loss, backward, `step`), after warm-up steps; the median of the rounds
counts. `gan` is one whole iteration of `examples/dcgan.rs` (the generator's step through the
discriminator, then the discriminator's on fake and real images) with the example's SGD.
`benches/conv_vs_torch.sh` alternates this with the bench's hdm rows.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, 1, 2)
        self.conv2 = nn.Conv2d(32, 64, 5, 1, 2)
        self.bn2 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(3136, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(x.flatten(1))


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 4, 2, 1)
        self.conv2 = nn.Conv2d(64, 128, 4, 2, 1)
        self.bn2 = nn.BatchNorm2d(128)
        self.conv3 = nn.Conv2d(128, 256, 3)
        self.bn3 = nn.BatchNorm2d(256)
        self.fc1 = nn.Linear(6400, 1024)
        self.bn4 = nn.BatchNorm1d(1024)
        self.fc2 = nn.Linear(1024, 1)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.relu(self.bn3(self.conv3(x)))
        x = F.leaky_relu(self.bn4(self.fc1(x.flatten(1))), 0.2)
        return self.fc2(x)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 1024)
        self.bn1 = nn.BatchNorm1d(1024)
        self.fc2 = nn.Linear(1024, 6400)
        self.bn2 = nn.BatchNorm1d(6400)
        self.up1 = nn.ConvTranspose2d(256, 128, 3)
        self.bn3 = nn.BatchNorm2d(128)
        self.up2 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
        self.bn4 = nn.BatchNorm2d(64)
        self.up3 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

    def forward(self, z):
        h = torch.relu(self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(z))))))
        h = torch.relu(self.bn3(self.up1(h.view(-1, 256, 5, 5))))
        h = torch.relu(self.bn4(self.up2(h)))
        return torch.sigmoid(self.up3(h))


def gan_iteration(batch, gen, optimizer):
    """One iteration of the DCGAN (`examples/dcgan.rs`, `hdm::gan`): the generator's step on
    BCE(D(G(z)), 1), then the discriminator's on BCE(D(G(z')), 0) + BCE(D(x), 1)."""
    g, d = Generator(), Discriminator()
    if optimizer == "adam":
        og, od = (torch.optim.Adam(m.parameters(), 2e-4, betas=(0.5, 0.999)) for m in (g, d))
    else:
        og, od = (torch.optim.SGD(m.parameters(), 0.005, momentum=0.8, nesterov=True) for m in (g, d))
    x = torch.rand(batch, 1, 28, 28, generator=gen)
    z, z2 = (torch.rand(batch, 32, generator=gen) * 2 - 1 for _ in range(2))
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    bce = F.binary_cross_entropy_with_logits

    def step():
        og.zero_grad()
        bce(d(g(z)), ones).backward()
        og.step()
        od.zero_grad()
        (bce(d(g(z2).detach()), zeros) + bce(d(x), ones)).backward()
        od.step()

    return step


def workload(name, batch, gen):
    if name == "gan":
        return gan_iteration(batch, gen, "sgd")
    x = torch.rand(batch, 1, 28, 28, generator=gen)
    if name == "cnn":
        model, lr = LeNet(), 1e-3
        target = torch.randint(0, 10, (batch,), generator=gen)
        loss_fn = F.cross_entropy
    else:
        model, lr = Discriminator(), 2e-4
        target = torch.randint(0, 2, (batch, 1), generator=gen).float()
        loss_fn = F.binary_cross_entropy_with_logits
    opt = torch.optim.Adam(model.parameters(), lr)

    def step():
        opt.zero_grad()
        loss_fn(model(x), target).backward()
        opt.step()

    return step


def median_step_us(step, seconds):
    for _ in range(3):
        step()
    t = time.perf_counter()
    step()
    once = max(time.perf_counter() - t, 1e-7)
    rounds = 15
    per_round = max(1, int(seconds / rounds / once))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(per_round):
            step()
        times.append((time.perf_counter() - t) / per_round)
    times.sort()
    return times[len(times) // 2] * 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default="64,128")
    p.add_argument("--workloads", default="cnn,dcgan-d")
    p.add_argument("--seconds", type=float, default=2.0)
    a = p.parse_args()
    gen = torch.Generator().manual_seed(0)
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch in [int(b) for b in a.batches.split(",")]:
            for name in a.workloads.split(","):
                us = median_step_us(workload(name, batch, gen), a.seconds)
                print(json.dumps({
                    "workload": name, "framework": "pytorch-eager", "torch": torch.__version__,
                    "optimizer": "sgd" if name == "gan" else "adam", "threads": threads, "batch": batch, "step_us": round(us, 1),
                }), flush=True)


if __name__ == "__main__":
    main()
