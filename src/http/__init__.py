"""REST edge (Litestar): requests become commands; results and refusals become envelopes."""
