"""FlowSink: the pipeline implements every callback the flow table makes."""

import inspect

from pilotfish.flows.sink import FlowSink
from pilotfish.pipeline import Pipeline


def test_pipeline_implements_the_sink() -> None:
    for name, member in inspect.getmembers(FlowSink, inspect.isfunction):
        if not name.startswith("_"):
            assert inspect.signature(getattr(Pipeline, name)).parameters.keys() == (
                inspect.signature(member).parameters.keys()
            )
