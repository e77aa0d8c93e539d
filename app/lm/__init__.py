"""Pure PyTorch language models of names. Nothing here imports the web layer.

KINDS is the registry of model kinds, one line per kind: a kind is its module (which ends with
`KIND = Kind(...)`, see app/lm/kind.py), this line, and its tests.
"""

from app.lm import bigram, conditional, mlp, neural_bigram, transformer, wavenet
from app.lm.base import LanguageModel
from app.lm.bigram import Bigram
from app.lm.kind import Kind, register
from app.lm.mlp import MLP, MLPConfig
from app.lm.neural_bigram import NeuralBigram
from app.lm.vocab import InvalidName, Vocab

KINDS: dict[str, Kind] = register(bigram.KIND, neural_bigram.KIND, mlp.KIND, wavenet.KIND,
                                  transformer.KIND, conditional.KIND)

__all__ = [
    "KINDS",
    "MLP",
    "Bigram",
    "InvalidName",
    "Kind",
    "LanguageModel",
    "MLPConfig",
    "NeuralBigram",
    "Vocab",
]
