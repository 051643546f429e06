"""ProsodicResNet: padding invariance, masked batch norm, fitting, save/load."""

from __future__ import annotations

import json

import pytest
import torch

from emodistill.models.prosodic import MaskedBatchNorm2d, ProsodicNetConfig, ProsodicResNet

LABELS = ["neutral", "happy", "angry", "sad"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one intra-op thread is faster and does not fight other processes for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(seed: int = 0, **kw) -> ProsodicResNet:
    torch.manual_seed(seed)
    cfg = ProsodicNetConfig(labels=LABELS, channels=[4, 8], blocks=[1, 1], embedding_dim=16, **kw)
    return ProsodicResNet(cfg)


def _warm_up_batch_norm(net: ProsodicResNet) -> None:
    """A few training steps so running statistics and weights are not the trivial initial ones."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(4, 40, 25, generator=g)
        loss = net(x, torch.tensor([40, 23, 11, 5]))[0].square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_output_is_the_same_alone_and_padded_in_a_batch(stem_stride):
    net = tiny_net(stem_stride=stem_stride)
    net.set_normalization(torch.randn(25), torch.rand(25) + 0.5)
    _warm_up_batch_norm(net)
    net.eval()
    g = torch.Generator().manual_seed(2)
    worst = 0.0
    for length in (1, 2, 3, 8, 17, 33, 60):
        x = torch.randn(1, length, 25, generator=g) * 3 + 1
        alone_logits, alone_emb = net(x, torch.tensor([length]))
        # Padded frames hold garbage, not zeros: the mask must hide whatever is there.
        batch = torch.randn(3, 61, 25, generator=g) * 10
        batch[1, :length] = x[0]
        logits, emb = net(batch, torch.tensor([61, length, 37]))
        worst = max(
            worst,
            (alone_logits - logits[1]).abs().max().item(),
            (alone_emb - emb[1]).abs().max().item(),
        )
    assert worst < 1e-5, worst


def test_masked_batch_norm_statistics_ignore_padding():
    bn = MaskedBatchNorm2d(3).train()
    x = torch.randn(2, 3, 10, 5)
    lengths = torch.tensor([10, 4])
    mask = (torch.arange(10)[None] < lengths[:, None]).float()[:, None, :, None]
    padded = x * mask + (1 - mask) * 1000.0  # huge values in the padding
    out = bn(padded, mask)
    valid = torch.cat([x[0].reshape(3, -1), x[1, :, :4].reshape(3, -1)], dim=1)
    expected_mean = valid.mean(dim=1)
    assert torch.allclose(bn.running_mean, 0.1 * expected_mean, atol=1e-5)
    assert out[1, :, :4].abs().max() < 10  # valid frames normalised with valid statistics


def test_tiny_resnet_fits_a_handful_of_examples():
    """Eight sequences whose class is in their level/slope: loss falls, predictions match."""
    g = torch.Generator().manual_seed(0)
    n, t = 8, 30
    labels = torch.arange(n) % 4
    x = torch.randn(n, t, 25, generator=g) * 0.3
    x += labels[:, None, None].float()  # class shifts every LLD
    lengths = torch.tensor([30, 25, 20, 30, 12, 30, 18, 27])
    net = tiny_net()
    net.set_normalization(x.reshape(-1, 25).mean(0), x.reshape(-1, 25).std(0))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        net.train()
        logits, _ = net(x, lengths)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    preds = net(x, lengths)[0].argmax(1)
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert losses[-1] < 0.3 * losses[0]
    assert preds.tolist() == labels.tolist()


def test_save_and_load_round_trip(tmp_path):
    net = tiny_net()
    net.set_normalization(torch.arange(25.0), torch.full((25,), 2.0))
    _warm_up_batch_norm(net)
    net.eval()
    folder = net.save_pretrained(tmp_path / "prosodic", training_config={"seed": 3})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["training_config"] == {"seed": 3}
    assert config["lld_mean"][3] == 3.0  # normalisation statistics stored in the folder
    loaded = ProsodicResNet.from_pretrained(folder)
    x = torch.randn(2, 20, 25)
    lengths = torch.tensor([20, 9])
    a, b = net(x, lengths), loaded(x, lengths)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[1].shape == (2, 16)


def test_bad_architecture_and_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="same length"):
        ProsodicResNet(ProsodicNetConfig(labels=LABELS, channels=[4, 8], blocks=[1]))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        ProsodicResNet.from_pretrained(tmp_path)
