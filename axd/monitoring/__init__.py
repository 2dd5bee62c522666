"""The daemon watching itself: recent observations and the sampled golden signals."""
