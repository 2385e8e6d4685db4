"""Text generation for every causal LM: sampling options (`options`), KV-cache decoding and request batching
(`engine`). Import the submodules; this package imports nothing so `modelyard --help` stays fast."""
