"""The replicas section of the tour, embedded (SQLite files) and on the real primary."""

from __future__ import annotations

import io

from phoenixkit.demo.replicas_section import run_replicas_section
from phoenixkit.demo.tour import TourContext
from tests.servers import PostgresServer


def test_embedded_section_routes_loses_and_readmits_a_replica() -> None:
    out = io.StringIO()
    run_replicas_section(TourContext(out=out))
    text = out.getvalue()
    assert "300 reads served by: {'replica-a': 150, 'replica-b': 150}" in text
    assert "a write, then a read in the same transaction: read from primary" in text
    assert "replica-b lost: 2 failed probes, in rotation: replica-a\n" in text
    assert "300 reads served by: {'replica-a': 300}" in text
    assert "healthy probe 2: in rotation: replica-a\n" in text
    assert "healthy probe 3: in rotation: replica-a, replica-b" in text
    assert "evictions=1 readmissions=1" in text


def test_postgres_section_refuses_a_primary_as_replica(pg_primary: PostgresServer) -> None:
    out = io.StringIO()
    run_replicas_section(TourContext(out=out, postgres_url=pg_primary.url))
    text = out.getvalue()
    assert "the router refuses it: not in recovery" in text
    assert "spills to the primary: standby=False" in text
    token = text.split("read-your-writes token: ")[1].split()[0]
    assert int(token, 16) > 0
