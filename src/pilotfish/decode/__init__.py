"""L2-L4 decoding: captured frames in, `L4Packet` tuples out (see `decoder.Decoder`)."""
