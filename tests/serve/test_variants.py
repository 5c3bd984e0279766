"""Production variants: the weighted split is statistically right, the header pins, weights change live."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import orjson
from scipy import stats

from loopml import Workspace
from loopml.serve import endpoints as eps
from loopml.serve.app import create_app
from loopml.serve.endpoints import VariantSpec
from loopml.train.package import Model
from tests.serve._fixtures import (
    Req,
    asgi,
    asgi_many,
    asgi_requests,
    body,
    frame,
    register_all,
    wait_for,
)

PATH = "/endpoints/ab/invocations"


def test_split_pin_and_live_weights(ws: Workspace, trained: Callable[..., Model]) -> None:
    models = register_all(ws, trained)
    eps.deploy(ws, "ab", variants=[VariantSpec("a", "churn:1", 0.8), VariantSpec("b", "churn:2", 0.2)])
    app = create_app(ws, metrics_flush_interval_s=0, reload_interval_s=0.02)
    try:
        n = 2000
        rs = asgi_many(app, PATH, body(1), n)
        assert {status for status, _, _ in rs} == {200}
        counts = Counter(h["x-amzn-invoked-production-variant"] for _, h, _ in rs)
        assert set(counts) == {"a", "b"}
        # the split is binomial(n, 0.8) for a: a two-sided exact test must not reject it
        assert stats.binomtest(counts["a"], n, 0.8).pvalue > 0.001, counts
        # ... and it is not just any split: 0.5/0.5 is rejected
        assert stats.binomtest(counts["a"], n, 0.5).pvalue < 1e-6
        # each variant answers with its own model
        expected = {v: models[ref].predict_proba(frame(1))[0, 1] for v, ref in (("a", "churn:1"), ("b", "churn:2"))}
        for _, h, content in rs[:50]:
            v = h["x-amzn-invoked-production-variant"]
            assert np.isclose(orjson.loads(content)["predictions"][0]["probabilities"][1], expected[v])
        # the header pins a variant, whatever its weight
        pinned = asgi_requests(app, [Req(PATH, body(1), {"content-type": "application/json",
                                                         "x-amzn-sagemaker-target-variant": "b"})] * 30)
        assert {r.headers["x-amzn-invoked-production-variant"] for r in pinned} == {"b"}
        # per-variant counters
        text = asgi(app, "/metrics", method="GET").text
        assert f'loopml_invocations_total{{endpoint="ab",variant="b"}} {counts["b"] + 30}.0' in text
        assert f'loopml_invocations_total{{endpoint="ab",variant="a"}} {counts["a"]}.0' in text

        # shift every request to b, without a restart
        eps.update_weights(ws, "ab", {"a": 0, "b": 1})

        def all_b() -> bool:
            got = asgi_many(app, PATH, body(1), 40)
            return {h["x-amzn-invoked-production-variant"] for _, h, _ in got} == {"b"}
        wait_for(all_b, what="the new weights to apply")
        # a weight-0 variant can still be pinned
        r = asgi(app, PATH, body(1), {"content-type": "application/json", "x-amzn-sagemaker-target-variant": "a"})
        assert r.headers["x-amzn-invoked-production-variant"] == "a"
        # the weight change reused the loaded backends: no model was loaded again
        assert app.state.server.cache.loads == 2
    finally:
        app.state.server.close()


def test_seeded_choice_is_reproducible(ws: Workspace, trained: Callable[..., Model]) -> None:
    register_all(ws, trained)
    eps.deploy(ws, "ab", variants=[VariantSpec("a", "churn:1", 1), VariantSpec("b", "churn:2", 1)])
    seqs = []
    for _ in range(2):
        app = create_app(ws, metrics_flush_interval_s=0, seed=42)
        try:
            rs = asgi_requests(app, [Req(PATH, body(1))] * 40)
            seqs.append([r.headers["x-amzn-invoked-production-variant"] for r in rs])
        finally:
            app.state.server.close()
    assert seqs[0] == seqs[1] and set(seqs[0]) == {"a", "b"}
