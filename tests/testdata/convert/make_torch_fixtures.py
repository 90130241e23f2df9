"""Writes CP-VTON GMM state dicts with torch.save in both serialisations, plus torch's own theta
for fixed inputs, so converter tests run without torch (needs the `torch` extra to rerun).

    python -m tests.testdata.convert.make_torch_fixtures

The network is CP-VTON's GMM architecture (networks.py), written here from its description at
lite width (ngf 4) and a 128×64 frame, with the original parameter names.
"""

import os

import numpy as np
import torch
from torch import nn

from tests.testdata.convert.torch_inputs import HEIGHT, NGF, WIDTH, inputs

HERE = os.path.dirname(os.path.abspath(__file__))


def extractor(in_channels):
    layers, channels = [], in_channels
    for i, width in enumerate((NGF, 2 * NGF, 4 * NGF, 8 * NGF, 8 * NGF, 8 * NGF)):
        kernel, stride = (4, 2) if i < 4 else (3, 1)
        layers += [nn.Conv2d(channels, width, kernel, stride, 1), nn.ReLU()]
        if i < 5:
            layers.append(nn.BatchNorm2d(width))
        channels = width
    return nn.Sequential(*layers)


class Extraction(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.model = extractor(in_channels)

    def forward(self, x):
        return self.model(x)


class Regression(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        layers, channels = [], in_channels
        for width, kernel, stride in ((8 * NGF, 4, 2), (4 * NGF, 4, 2), (2 * NGF, 3, 1),
                                      (NGF, 3, 1)):
            layers += [nn.Conv2d(channels, width, kernel, stride, 1), nn.BatchNorm2d(width),
                       nn.ReLU()]
            channels = width
        self.conv = nn.Sequential(*layers)
        self.linear = nn.Linear(NGF * (HEIGHT // 64) * (WIDTH // 64), 50)

    def forward(self, x):
        x = self.conv(x)
        return torch.tanh(self.linear(x.reshape(x.size(0), -1)))


class Gmm(nn.Module):
    def __init__(self, cloth_channels):
        super().__init__()
        self.extractionA = Extraction(22)
        self.extractionB = Extraction(cloth_channels)
        self.regression = Regression((HEIGHT // 16) * (WIDTH // 16))

    def forward(self, a, b):
        def norm(f):
            return f / torch.sqrt((f * f).sum(1, keepdim=True) + 1e-6)

        fa, fb = norm(self.extractionA(a)), norm(self.extractionB(b))
        n, c, h, w = fa.shape
        fa = fa.transpose(2, 3).contiguous().view(n, c, h * w)
        fb = fb.view(n, c, h * w).transpose(1, 2)
        corr = torch.bmm(fb, fa).view(n, h, w, h * w).transpose(2, 3).transpose(1, 2)
        return self.regression(corr.contiguous())


def main(directory=HERE):
    torch.manual_seed(0)
    for variant, channels in (('cpvton', 3), ('cpvton_plus', 1)):
        model = Gmm(channels)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.1, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.1, 0.1)
        model.eval()
        agnostic, cloth = inputs(channels)
        with torch.no_grad():
            theta = model(torch.from_numpy(agnostic), torch.from_numpy(cloth)).numpy()
        state = model.state_dict()
        torch.save(state, os.path.join(directory, f'gmm_{variant}_zip.pth'))
        torch.save(state, os.path.join(directory, f'gmm_{variant}_legacy.pth'),
                   _use_new_zipfile_serialization=False)
        np.save(os.path.join(directory, f'gmm_{variant}_theta.npy'), theta)
        print(variant, len(state), 'entries')


if __name__ == '__main__':
    main()
