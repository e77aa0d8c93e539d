"""Pydantic models of the API's requests and responses."""

from __future__ import annotations

from pydantic import BaseModel

from app.checkpoints import DatasetInfo, Metrics
from app.registry import LoadedModel


class ModelSummary(BaseModel):
    name: str
    type: str
    n_params: int
    dataset: DatasetInfo
    metrics: Metrics

    @classmethod
    def of(cls, m: LoadedModel) -> ModelSummary:
        meta = m.meta
        return cls(name=m.name, type=meta.model_type, n_params=meta.n_params,
                   dataset=meta.dataset, metrics=meta.metrics)
