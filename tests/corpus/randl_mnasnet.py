# nasflops bridge corpus: randl_mnasnet
# Source: https://github.com/Randl/MNASNet-pytorch/blob/b949c36753b66979158c44ed0dc1368794b5c63d/dropblock.py
# Source: https://github.com/Randl/MNASNet-pytorch/blob/b949c36753b66979158c44ed0dc1368794b5c63d/MnasNet.py
# Commit: b949c36753b66979158c44ed0dc1368794b5c63d
# Licence: MIT (full text: LICENSES/Randl__MNASNet-pytorch.txt)
# Copyright: Copyright (c) 2018-2019 Evgenii Zheltonozhskii
# Changes: dropblock.py (same repository; from miguelvr/dropblock) inlined before MnasNet.py; `if __name__ == '__main__'` demo blocks dropped; harness footer (INPUT_SHAPE, build) added

# ---- Randl/MNASNet-pytorch: dropblock.py --------------------
# https://github.com/miguelvr/dropblock/blob/master/dropblock/dropblock.py

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class DropBlock2D(nn.Module):
    r"""Randomly zeroes 2D spatial blocks of the input tensor.

    As described in the paper
    `DropBlock: A regularization method for convolutional networks`_ ,
    dropping whole blocks of feature map allows to remove semantic
    information as compared to regular dropout.

    Args:
        drop_prob (float): probability of an element to be dropped.
        block_size (int): size of the block to drop

    Shape:
        - Input: `(N, C, H, W)`
        - Output: `(N, C, H, W)`

    .. _DropBlock: A regularization method for convolutional networks:
       https://arxiv.org/abs/1810.12890

    """

    def __init__(self, drop_prob, block_size):
        super(DropBlock2D, self).__init__()

        self.drop_prob = drop_prob
        self.block_size = block_size

    def forward(self, x):
        # shape: (bsize, channels, height, width)

        assert x.dim() == 4, \
            "Expected input with 4 dimensions (bsize, channels, height, width)"

        if not self.training or self.drop_prob == 0.:
            return x
        else:
            # get gamma value
            gamma = self._compute_gamma(x)

            # sample mask and place on input device
            mask = (torch.rand(x.shape[0], *x.shape[2:]) < gamma).to(x)

            # compute block mask
            block_mask = self._compute_block_mask(mask)

            # apply block mask
            out = x * block_mask[:, None, :, :]

            # scale output
            out = out * block_mask.numel() / block_mask.sum()

            return out

    def _compute_block_mask(self, mask):
        block_mask = F.max_pool2d(input=mask[:, None, :, :],
                                  kernel_size=(self.block_size, self.block_size),
                                  stride=(1, 1),
                                  padding=self.block_size // 2)

        if self.block_size % 2 == 0:
            block_mask = block_mask[:, :, :-1, :-1]

        block_mask = 1 - block_mask.squeeze(1)

        return block_mask

    def _compute_gamma(self, x):
        return self.drop_prob / (self.block_size ** 2)


class DropBlock3D(DropBlock2D):
    r"""Randomly zeroes 3D spatial blocks of the input tensor.

    An extension to the concept described in the paper
    `DropBlock: A regularization method for convolutional networks`_ ,
    dropping whole blocks of feature map allows to remove semantic
    information as compared to regular dropout.

    Args:
        drop_prob (float): probability of an element to be dropped.
        block_size (int): size of the block to drop

    Shape:
        - Input: `(N, C, D, H, W)`
        - Output: `(N, C, D, H, W)`

    .. _DropBlock: A regularization method for convolutional networks:
       https://arxiv.org/abs/1810.12890

    """

    def __init__(self, drop_prob, block_size):
        super(DropBlock3D, self).__init__(drop_prob, block_size)

    def forward(self, x):
        # shape: (bsize, channels, depth, height, width)

        assert x.dim() == 5, \
            "Expected input with 5 dimensions (bsize, channels, depth, height, width)"

        if not self.training or self.drop_prob == 0.:
            return x
        else:
            # get gamma value
            gamma = self._compute_gamma(x)

            # sample mask and place on input device
            mask = (torch.rand(x.shape[0], *x.shape[2:]) < gamma).to(x)

            # compute block mask
            block_mask = self._compute_block_mask(mask)

            # apply block mask
            out = x * block_mask[:, None, :, :, :]

            # scale output
            out = out * block_mask.numel() / block_mask.sum()

            return out

    def _compute_block_mask(self, mask):
        block_mask = F.max_pool3d(input=mask[:, None, :, :, :],
                                  kernel_size=(self.block_size, self.block_size, self.block_size),
                                  stride=(1, 1, 1),
                                  padding=self.block_size // 2)

        if self.block_size % 2 == 0:
            block_mask = block_mask[:, :, :-1, :-1, :-1]

        block_mask = 1 - block_mask.squeeze(1)

        return block_mask

    def _compute_gamma(self, x):
        return self.drop_prob / (self.block_size ** 3)


class DropBlockScheduled(nn.Module):
    def __init__(self, dropblock, start_value, stop_value, nr_steps):
        super(DropBlockScheduled, self).__init__()
        self.dropblock = dropblock
        self.i = 0
        self.drop_values = np.linspace(start=start_value, stop=stop_value, num=nr_steps)

    def forward(self, x):
        if self.training:
            self.step()
        return self.dropblock(x)

    def step(self):
        if self.i < len(self.drop_values):
            self.dropblock.drop_prob = self.drop_values[self.i]

        self.i += 1

# ---- Randl/MNASNet-pytorch: MnasNet.py --------------------
import torch
import torch.nn as nn
from torch.autograd import Variable

# from https://github.com/billhhh/MnasNet-pytorch-pretrained
# [corpus: removed local import] from dropblock import DropBlockScheduled, DropBlock2D


def Conv_3x3(inp, oup, stride, activation=nn.ReLU6, act_params={"inplace": True}):
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
        nn.BatchNorm2d(oup),
        activation(**act_params)
    )


def Conv_1x1(inp, oup, activation=nn.ReLU6, act_params={"inplace": True}):
    return nn.Sequential(
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        activation(**act_params)
    )


def SepConv_3x3(inp, oup, activation=nn.ReLU6, act_params={"inplace": True}):  # input=32, output=16
    return nn.Sequential(
        # dw
        nn.Conv2d(inp, inp, 3, 1, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        activation(**act_params),
        # pw-linear
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
    )


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio, kernel, drop_prob=0.0, num_steps=3e5, activation=nn.ReLU6,
                 act_params={"inplace": True}):
        super(InvertedResidual, self).__init__()
        self.stride = stride
        assert stride in [1, 2]

        self.use_res_connect = self.stride == 1 and inp == oup

        self.conv = nn.Sequential(
            # pw
            nn.Conv2d(inp, inp * expand_ratio, 1, 1, 0, bias=False),
            nn.BatchNorm2d(inp * expand_ratio),
            DropBlockScheduled(
                DropBlock2D(drop_prob=drop_prob, block_size=7),
                start_value=0.,
                stop_value=drop_prob,
                nr_steps=num_steps),
            activation(**act_params),
            # dw
            nn.Conv2d(inp * expand_ratio, inp * expand_ratio, kernel, stride, kernel // 2, groups=inp * expand_ratio,
                      bias=False),
            nn.BatchNorm2d(inp * expand_ratio),
            DropBlockScheduled(
                DropBlock2D(drop_prob=drop_prob, block_size=7),
                start_value=0.,
                stop_value=drop_prob,
                nr_steps=num_steps),
            activation(**act_params),
            # pw-linear
            nn.Conv2d(inp * expand_ratio, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
            DropBlockScheduled(
                DropBlock2D(drop_prob=drop_prob, block_size=7),
                start_value=0.,
                stop_value=drop_prob,
                nr_steps=num_steps),
        )
        if self.use_res_connect:
            self.skip_drop = DropBlockScheduled(
                DropBlock2D(drop_prob=drop_prob, block_size=7),
                start_value=0.,
                stop_value=drop_prob,
                nr_steps=num_steps)

    def forward(self, x):
        if self.use_res_connect:
            return self.skip_drop(x + self.conv(x))
        else:
            return self.conv(x)


class MnasNet(nn.Module):
    def __init__(self, n_class=1000, input_size=224, width_mult=1., drop_prob=0.0, num_steps=3e5, activation=nn.ReLU6,
                 act_params={"inplace": True}):
        super(MnasNet, self).__init__()

        self.activation = activation
        self.act_params = act_params

        # setting of inverted residual blocks
        self.interverted_residual_setting = [
            # t, c, n, s, k, dp
            [3, 24, 3, 2, 3, 0],  # -> 56x56
            [3, 40, 3, 2, 5, 0],  # -> 28x28
            [6, 80, 3, 2, 5, 0],  # -> 14x14
            [6, 96, 2, 1, 3, drop_prob],  # -> 14x14
            [6, 192, 4, 2, 5, drop_prob],  # -> 7x7
            [6, 320, 1, 1, 3, drop_prob],  # -> 7x7
        ]
        self.num_steps = num_steps

        assert input_size % 32 == 0
        input_channel = int(32 * width_mult)
        self.last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280

        # building first two layer
        self.features = [Conv_3x3(3, input_channel, 2, self.activation, self.act_params),
                         SepConv_3x3(input_channel, 16, self.activation, self.act_params)]
        input_channel = 16

        # building inverted residual blocks (MBConv)
        for t, c, n, s, k, dp in self.interverted_residual_setting:
            output_channel = int(c * width_mult)
            for i in range(n):
                if i == 0:
                    self.features.append(InvertedResidual(input_channel, output_channel, s, t, k, dp, self.num_steps,
                                                          self.activation, self.act_params))
                else:
                    self.features.append(InvertedResidual(input_channel, output_channel, 1, t, k, dp, self.num_steps,
                                                          self.activation, self.act_params))
                input_channel = output_channel

        # building last several layers
        self.features.append(Conv_1x1(input_channel, self.last_channel, self.activation, self.act_params))
        self.features.append(nn.AdaptiveAvgPool2d(1))

        # make it nn.Sequential
        self.features = nn.Sequential(*self.features)

        # building classifier
        self.classifier = nn.Sequential(
            nn.Dropout(0.0),  # TODO
            nn.Linear(self.last_channel, n_class),
        )

    def forward(self, x):
        x = self.features(x)
        x = x.view(-1, self.last_channel)
        x = self.classifier(x)
        return x


# ---- corpus harness (added) ----------------------------------------
INPUT_SHAPE = (3, 224, 224)


def build():
    # MnasNet() with its default num_steps=3e5 fails under numpy >= 1.18
    # (np.linspace(num=3e5): a float num); the same network with an int:
    return MnasNet(num_steps=300000)
