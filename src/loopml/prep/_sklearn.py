"""A fitted recipe as a scikit-learn transformer (imported only when asked for: sklearn is heavy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

if TYPE_CHECKING:
    from loopml.prep.recipe import FittedRecipe


class RecipeTransformer(TransformerMixin, BaseEstimator):
    """Wraps an already fitted recipe: ``fit`` keeps it as it is, ``transform`` applies it.

    Parameters
    ----------
    recipe
        The fitted recipe (``FittedRecipe.to_sklearn()`` builds this for you).
    """

    def __init__(self, recipe: FittedRecipe) -> None:
        self.recipe = recipe

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: pd.DataFrame, y: Any = None) -> RecipeTransformer:
        """Nothing to learn: the recipe is fitted already."""
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Apply the recipe (see :meth:`FittedRecipe.transform`)."""
        return self.recipe.transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The output columns of the fitting data."""
        return np.asarray(self.recipe.output_columns, dtype=object)
