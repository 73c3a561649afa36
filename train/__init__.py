"""Training recipes, one file per family (its full recipe and its schedules):
``pixeljax train NAME --data SPEC --workdir DIR``."""
