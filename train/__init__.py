"""Training recipes, one per victim: ``pixeljax train NAME --data SPEC --workdir DIR``."""
