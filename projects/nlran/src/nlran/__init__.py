"""NL-RAN: residual 3D attention non-local network for COVID-19 CT classification."""
