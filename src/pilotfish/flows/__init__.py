"""Flows: TCP stream reassembly and UDP conversations, in a bounded flow table.

`table.FlowTable` takes decoded `L4Packet`s and calls a `FlowSink` with in-order stream data,
gaps and closes.  See `sink.FlowSink` for the callbacks.
"""
