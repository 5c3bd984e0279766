"""The recipe steps, one small class each, registered by their ``kind``.

Cleaning: drop_duplicates, drop_rows, flag_rows, drop_columns, impute, clip,
winsorize, cast, coerce_numeric, parse_dates. Transformation: standardize,
minmax, robust, log, box_cox, yeo_johnson. Encoding: one_hot, ordinal,
frequency, target_encode. Extraction: date_parts, age, bin, expression,
tfidf, hashing, group_agg. Time series: lag, rolling, diff. Selection:
select_variance, select_correlation, select_mutual_info, select_model,
select_rfe.
"""

from loopml.prep._base import STEPS, Step
from loopml.prep.steps.cleaning import (
    Cast,
    Clip,
    CoerceNumeric,
    DropColumns,
    DropDuplicates,
    DropRows,
    FlagRows,
    Impute,
    ParseDates,
    Winsorize,
)
from loopml.prep.steps.encoding import Frequency, OneHot, Ordinal, TargetEncode
from loopml.prep.steps.extraction import Age, Bin, DateParts, ExpressionStep, Hashing, Tfidf
from loopml.prep.steps.history import Diff, GroupAgg, Lag, Rolling
from loopml.prep.steps.scaling import BoxCox, Log, MinMax, Robust, Standardize, YeoJohnson
from loopml.prep.steps.selection import (
    SelectCorrelation,
    SelectModel,
    SelectMutualInfo,
    SelectRFE,
    SelectVariance,
)

__all__ = [
    "STEPS",
    "Age",
    "Bin",
    "BoxCox",
    "Cast",
    "Clip",
    "CoerceNumeric",
    "DateParts",
    "Diff",
    "DropColumns",
    "DropDuplicates",
    "DropRows",
    "ExpressionStep",
    "FlagRows",
    "Frequency",
    "GroupAgg",
    "Hashing",
    "Impute",
    "Lag",
    "Log",
    "MinMax",
    "OneHot",
    "Ordinal",
    "ParseDates",
    "Robust",
    "Rolling",
    "SelectCorrelation",
    "SelectModel",
    "SelectMutualInfo",
    "SelectRFE",
    "SelectVariance",
    "Standardize",
    "Step",
    "TargetEncode",
    "Tfidf",
    "Winsorize",
    "YeoJohnson",
]
