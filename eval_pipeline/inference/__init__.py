"""Inference: the Sampler protocol, its backends, the request cache and the generation runner."""
