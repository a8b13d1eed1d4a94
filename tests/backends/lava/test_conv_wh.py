"""The runtime's conv_wh, the convolution of n3ml's own Lava Conv models (no Lava needed), is torch's conv2d in
Lava's layout for the geometries n3ml emits (stride, padding, dilation, groups up to depthwise 512, the batch
as groups)."""
import numpy as np
import pytest
import torch

from n3ml.backends.lava import runtime


@pytest.mark.parametrize("cin,cout,groups,k,stride,padding,dilation", [
    (3, 64, 1, 7, 2, 3, 1),        # a ResNet stem
    (256, 512, 1, 3, 2, 1, 1),     # stage 4 entry
    (512, 512, 512, 1, 1, 0, 1),   # depthwise identity synapse (spikes-as-synapse)
    (512, 512, 512, 3, 2, 1, 1),   # depthwise pool window
    (6, 8, 2, 3, 1, 2, 2),         # a batch of 2 as groups, dilated
])
def test_conv_wh_is_torchs_conv2d_in_lavas_layout(cin, cout, groups, k, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x = (rng.random((cin, 9, 7)) < 0.3).astype(np.int64)          # torch (C, H, W) spikes
    w = rng.integers(-128, 128, (cout, cin // groups, k, k))       # torch cross-correlation weights
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None].double(), torch.from_numpy(w).double(),
                                     stride=stride, padding=padding, dilation=dilation, groups=groups)[0]
    lw = runtime.conv_weights(w, 1)                                 # -> Lava (Cout, KW, KH, Cin/g), flipped
    got = runtime.conv_wh(x.transpose(2, 1, 0), lw, (stride,) * 2, (padding,) * 2, (dilation,) * 2, groups)
    np.testing.assert_array_equal(got, ref.numpy().transpose(2, 1, 0).astype(np.int64))
