"""A schemathesis run over the OpenAPI spec of the national surface (/api/v2) against a live
server: whatever it sends, the answer is never a server error.

(Driven through Hypothesis directly: schemathesis' own pytest plugin does not work with the
pytest version here.)"""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings


def test_no_input_makes_the_national_api_fail(live_server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    v2 = [op for op in operations if op.path.startswith("/api/v2/")]
    assert len(v2) >= 25, [op.path for op in v2]
    failures: list[str] = []
    calls: Counter[str] = Counter()

    for op in v2:
        @given(case=op.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def one(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            calls[f"{response.status_code // 100}xx"] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} "
                                f"{case.body!r} -> {response.status_code}")

        one()
    assert not failures, failures[:10]
    assert sum(calls.values()) >= 10 * len(v2)  # it really sent requests
    assert calls["4xx"] > 0
