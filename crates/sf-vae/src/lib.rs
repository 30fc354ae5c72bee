//! Wan2.1 VAE and TAEHV decoders. Not implemented yet: see the README's status table.
