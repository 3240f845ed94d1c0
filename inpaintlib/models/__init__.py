"""One module per paper: the generator, critics and the training method that ties them together."""
