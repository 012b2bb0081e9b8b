"""Node access adapters: LocalTransport (this machine), and the transport factory; SSH comes next."""
