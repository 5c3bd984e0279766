"""Stages 3 and 4, preprocessing and feature engineering: the fitted Recipe.

A :class:`Recipe` is an ordered list of steps (``loopml.prep.steps``),
declared in YAML or Python. Fitted on a dataset version it becomes a
:class:`FittedRecipe`, stored as a versioned JSON artifact, and applied the
same way to training data, batch data and single records at serving time.

Names load on first use (PEP 562): a training job or a server that only
applies a fitted recipe imports :mod:`loopml.prep.recipe` and its steps, not
the catalog and metadata layers that storing recipe versions needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

if TYPE_CHECKING:
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

#: public name -> module that defines it
_LAZY = {
    "RowDropped": "loopml.prep._base",
    "Step": "loopml.prep._base",
    "StepError": "loopml.prep._base",
    "Expression": "loopml.prep._expr",
    "FittedRecipe": "loopml.prep.recipe",
    "Recipe": "loopml.prep.recipe",
    **dict.fromkeys(
        ["RecipeSummary", "RecipeVersionInfo", "apply_recipe", "fit_recipe", "get_recipe", "list_recipes",
         "load_recipe", "recipe_versions"], "loopml.prep.versions"),
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


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
