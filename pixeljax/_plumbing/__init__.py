"""Internal helpers every package uses: checked settings fields, config files, file locks and
notices. Nothing here is public API."""
