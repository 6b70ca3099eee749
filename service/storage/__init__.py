"""Storage: the database of runs, published forecast fields and the models that made them."""
