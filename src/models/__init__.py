"""Plain `nn.Module` builders, one per architecture. No Lightning here."""

from src.models.lenet import LeNet5, lenet5
from src.models.mlp import MLP, mlp
from src.models.resnet import resnet152
from src.models.vgg import vgg19

__all__ = ["MLP", "LeNet5", "lenet5", "mlp", "resnet152", "vgg19"]
