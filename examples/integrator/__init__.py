"""An example integrator: an employer's case system that follows RapportVrijgegeven over NATS."""
