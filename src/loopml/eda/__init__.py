"""Stage 2, exploratory data analysis: profile a table and render a self-contained HTML report.

``profile`` is pure (a table in, a JSON-ready :class:`Profile` out),
``render_html`` turns a profile into one offline HTML file, and ``run_eda``
does both for a dataset version of the catalog, storing the results as
artifacts linked to the version by lineage.
"""

from loopml.eda._associations import correlation_ratio, cramers_v
from loopml.eda._config import ProfileConfig
from loopml.eda.profile import Profile, profile
from loopml.eda.report import render_html
from loopml.eda.run import EdaResult, load_profile, reports, run_eda

__all__ = [
    "EdaResult",
    "Profile",
    "ProfileConfig",
    "correlation_ratio",
    "cramers_v",
    "load_profile",
    "profile",
    "render_html",
    "reports",
    "run_eda",
]
