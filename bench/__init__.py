"""pilotfish benchmarks against its peers (tcpdump, tshark), printed as ratio tables."""
