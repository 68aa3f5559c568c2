import pytest
import torch

from stages.nets import NETWORKS, build_network, check_network_input
from stages.nets.autoencoder import Autoencoder
from stages.plumbing.errors import ConfigError


@pytest.mark.parametrize("shape,code", [((1, 28, 28), (128, 3, 3)), ((1, 16, 16), (128, 2, 2))])
def test_cae_shapes_follow_dcec(shape, code):
    net = build_network("cae", shape, {"embedding_dim": 10})
    x = torch.rand(4, *shape)
    z, x_hat = net(x)
    assert z.shape == (4, 10)
    assert x_hat.shape == x.shape
    assert net._code_shape == code
    convs = [m for m in net.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert [c.kernel_size[0] for c in convs] == [5, 5, 3]
    assert all(c.stride == (2, 2) for c in convs)


def test_sae_is_d_500_500_2000_10_mirrored():
    net = build_network("sae", (1, 28, 28))
    linears = [m for m in net.encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 500), (500, 500), (500, 2000), (2000, 10)]
    dec = [m for m in net.decoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dec] == [
        (10, 2000), (2000, 500), (500, 500), (500, 784)]
    # linear embedding and output: the last module of each half is a Linear, not a ReLU
    assert isinstance(net.encoder[-1], torch.nn.Linear)
    assert isinstance(net.decoder[-1], torch.nn.Linear)
    z, x_hat = net(torch.rand(3, 1, 28, 28))
    assert z.shape == (3, 10) and x_hat.shape == (3, 1, 28, 28)


def test_cae_rejects_small_and_flat_inputs():
    with pytest.raises(ConfigError, match="at least 16x16.*8x8"):
        check_network_input("cae", (1, 8, 8), "digits")
    with pytest.raises(ConfigError, match="needs images"):
        check_network_input("cae", (64,))
    with pytest.raises(ConfigError, match="unknown network 'vae'.*valid choices: cae, depict, "
                                          "dscdan, rmn-sae, sae, saip-cnn"):
        check_network_input("vae", (1, 28, 28))


def test_unknown_arch_options_are_errors_naming_the_valid_ones():
    from stages.plumbing.errors import ConfigError

    with pytest.raises(ConfigError, match=r"net 'sae': unknown arch option\(s\) 'hiden'; "
                                          r"valid options: .*\bhidden\b"):
        build_network("sae", (1, 8, 8), {"hiden": [3]})


@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_every_network_offers_the_autoencoder_interface(net):
    """encode/decode/forward agree, and encoder/decoder hold disjoint parts of the weights."""
    model = build_network(net, (1, 28, 28)).eval()
    assert isinstance(model, Autoencoder)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        z, x_hat = model(x)
        assert torch.allclose(model.encode(x), z) and torch.allclose(model.decode(z), x_hat)
    assert x_hat.shape == x.shape and z.shape[0] == 3
    enc = {id(p) for p in model.encoder.parameters()}
    dec = {id(p) for p in model.decoder.parameters()}
    assert enc and dec and not enc & dec
    assert enc | dec <= {id(p) for p in model.parameters()}
