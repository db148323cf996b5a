"""Loads the networks the `dcgan` example wrote into the equivalent `torch.nn` modules, strictly,
and makes samples with the generator in PyTorch.

    pip install torch safetensors numpy
    python3 examples/dcgan_torch.py runs/dcgan

The modules' attribute names are the fields of `examples/common/mod.rs`'s `Generator` and
`Discriminator` (layers without parameters, such as activations and reshapes, have none in
PyTorch either), so `load_state_dict(strict=True)` takes the files as they are: weights in
PyTorch's layouts (`[out, in]`, `[out, in, kh, kw]`, `[in, out, kh, kw]` for a transposed
convolution) and each batch normalisation's running statistics and `num_batches_tracked`.
"""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


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
        """The logit of `x` being real (hdm folds the final sigmoid into the loss)."""
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.relu(self.bn3(self.conv3(x)))
        x = F.leaky_relu(self.bn4(self.fc1(x.flatten(1))), 0.2)
        return self.fc2(x)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/dcgan"
    g, d = Generator(), Discriminator()
    g.load_state_dict(load_file(f"{out}/generator.safetensors"), strict=True)
    d.load_state_dict(load_file(f"{out}/discriminator.safetensors"), strict=True)
    g.eval()
    d.eval()
    with torch.no_grad():
        z = torch.rand(16, 32) * 2 - 1
        samples = g(z)
        realness = torch.sigmoid(d(samples)).flatten()
    print(f"loaded {out}/generator.safetensors and {out}/discriminator.safetensors strictly")
    print(f"16 samples {tuple(samples.shape)}, pixels in [{samples.min():.3f}, {samples.max():.3f}]; "
          f"D(G(z)) mean {realness.mean():.3f}")


if __name__ == "__main__":
    main()
