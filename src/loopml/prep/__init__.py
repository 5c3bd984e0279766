"""Stages 3 and 4, preprocessing and feature engineering: the fitted Recipe.

A :class:`Recipe` is an ordered list of steps (``loopml.prep.steps``),
declared in YAML or Python. Fitted on a dataset version it becomes a
:class:`FittedRecipe`, stored as a versioned JSON artifact, and applied the
same way to training data, batch data and single records at serving time.
"""

from loopml.prep._base import RowDropped, Step, StepError
from loopml.prep._expr import Expression
from loopml.prep.recipe import FittedRecipe, Recipe
from loopml.prep.versions import (
    RecipeSummary,
    RecipeVersionInfo,
    apply_recipe,
    fit_recipe,
    get_recipe,
    list_recipes,
    load_recipe,
    recipe_versions,
)

__all__ = [
    "Expression",
    "FittedRecipe",
    "Recipe",
    "RecipeSummary",
    "RecipeVersionInfo",
    "RowDropped",
    "Step",
    "StepError",
    "apply_recipe",
    "fit_recipe",
    "get_recipe",
    "list_recipes",
    "load_recipe",
    "recipe_versions",
]
