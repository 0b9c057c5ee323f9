"""The benchmark: the service against the bare stack and moto, on loopback."""
