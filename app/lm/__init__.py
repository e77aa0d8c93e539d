"""Pure PyTorch language models of names. Nothing here imports the web layer."""

from app.lm.base import LanguageModel
from app.lm.bigram import Bigram
from app.lm.mlp import MLP, MLPConfig
from app.lm.neural_bigram import NeuralBigram
from app.lm.vocab import InvalidName, Vocab

MODEL_TYPES: dict[str, type[LanguageModel]] = {
    cls.kind: cls for cls in (Bigram, NeuralBigram, MLP)
}

__all__ = [
    "MODEL_TYPES",
    "MLP",
    "Bigram",
    "InvalidName",
    "LanguageModel",
    "MLPConfig",
    "NeuralBigram",
    "Vocab",
]
