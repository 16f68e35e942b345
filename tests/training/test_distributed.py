import torch
from torch import nn

from instcolor.training.distributed import AllReduceBatchNorm2d, DistributedContext, synchronize_batch_norm


def test_without_a_process_group_it_is_plain_batch_norm():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    synced = synchronize_batch_norm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.device("cpu"))
    synced.load_state_dict(plain.state_dict())
    assert isinstance(synced[1], AllReduceBatchNorm2d)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(synced(x), plain(x))
    torch.testing.assert_close(synced[1].running_var, plain[1].running_var)


def test_synchronised_layers_keep_the_parameter_objects():
    model = nn.Sequential(nn.Sequential(nn.BatchNorm2d(4)))
    weight, running_mean = model[0][0].weight, model[0][0].running_mean
    synchronize_batch_norm(model, torch.device("cpu"))
    assert model[0][0].weight is weight and model[0][0].running_mean is running_mean
    keys = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert list(model.state_dict()) == [f"0.0.{k}" for k in keys]


def test_context_without_torchrun_is_a_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = DistributedContext.from_environment("cpu")
    assert not context.enabled and context.is_main
    assert context.sum(torch.tensor(2.0)).item() == 2.0
