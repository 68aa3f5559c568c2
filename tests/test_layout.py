"""stages.nets.layout: channels-last batches, one-channel ones included."""

import pytest
import torch

from stages.nets.layout import channels_last


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_last_keeps_the_values_and_makes_a_conv_write_channels_last(channels):
    x = torch.rand(4, channels, 6, 5)
    y = channels_last(x)
    assert torch.equal(y, x)
    assert y.stride()[1] == 1
    out = torch.nn.Conv2d(channels, 8, 3, padding=1)(y)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not out.is_contiguous()


def test_channels_last_of_one_channel_is_a_view_and_keeps_gradients():
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    y = channels_last(x)
    assert y.data_ptr() == x.data_ptr()
    (y * torch.arange(32.0).view(2, 1, 4, 4)).sum().backward()
    assert torch.equal(x.grad, torch.arange(32.0).view(2, 1, 4, 4))
