"""The testbed: a local "cluster" of network-namespace pods on an address-less bridge,
running real servers (nginx, a Python API, dnsmasq, Redis) under bounded load.

It is both `pilotfish demo`'s embedded cluster and the integration-test fixture.  Needs
root.  Traffic stays on the testbed bridge: the root namespace has no route into it and
load targets outside the testbed subnet are refused.

Import from the modules (`netns.Testbed`, `services.start_nginx`, `demo.build_demo`, ...):
this package imports nothing itself, so `python -m pilotfish.testbed.apiserver` (and the
in-pod `probe`/`loadgen` helpers) start with nothing else loaded.
"""
