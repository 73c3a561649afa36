"""The ``pixeljax bench`` command's measurements (:mod:`.measure`) and tables (:mod:`.tables`)."""
