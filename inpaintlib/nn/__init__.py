"""Small building blocks shared by the models: conv blocks, normalisations, discriminators."""
