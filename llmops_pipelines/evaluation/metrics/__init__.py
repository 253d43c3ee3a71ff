"""One module per metric: each scores one sample and returns a value with its reason."""
